"""Benchmark: the body model (`cryoplan.imaging.body.build_body_model`) and its field-of-view warnings on
the real sets 02 and 03 (when the shared test data is found) and on the digital phantom at 512 × 512 × 150
voxels of 0.78 × 0.78 × 2 mm; prints wall time per case, peak memory and the machine's copy bandwidth.

    .venv/bin/python benchmarks/body.py [--seed 0]

Reading the images and generating the phantom are not timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from common import copy_bandwidth_gb_s, markdown_table, peak_memory_bytes, reset_peak_memory

PHANTOM_SHAPE = (512, 512, 150)
PHANTOM_SPACING_MM = (0.78125, 0.78125, 2.0)


def cases(seed: int) -> Iterator[tuple[str, object, object]]:
    """(name, image, anatomy) of each case, read or generated one at a time, so that each peak memory is
    its own case's."""
    from cryoplan.imaging import ImagingWarning
    from cryoplan.imaging.anatomy import anatomy_from_labels, load_anatomy
    from cryoplan.imaging.phantom import TumourSpec, make_phantom

    configured = os.environ.get("CRYOPLAN_TEST_DATA")
    data = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if data.is_dir():
        folder = data / "02_totalseg_ct_sm_vessels"
        yield (
            "set 02",
            *load_anatomy(folder / "example_ct_sm.nii.gz", folder / "example_seg.nii.gz", "totalsegmentator"),
        )
        folder = data / "03_totalseg_dicom_ct_series"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImagingWarning)  # the set's empty UIDs, repaired
            read = load_anatomy(folder / "dicom", folder / "example_seg_dicom.nii.gz", "totalsegmentator")
        yield "set 03", *read
    else:
        print(f"shared test data not found at {data}: phantom only", file=sys.stderr)
    field = tuple(n * s for n, s in zip(PHANTOM_SHAPE, PHANTOM_SPACING_MM))
    phantom = make_phantom([TumourSpec((-34.0, 0.0, 20.0), 28.0)], PHANTOM_SPACING_MM, seed=seed, field_mm=field)
    yield "phantom", phantom.ct, anatomy_from_labels(phantom.labels, mapping=phantom.label_map)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantom's CT noise")
    seed = parser.parse_args().seed
    from cryoplan.imaging.body import build_body_model, field_of_view_warnings

    rows = []
    for name, image, anatomy in cases(seed):
        reset_peak_memory()
        start = time.perf_counter()
        model = build_body_model(image, anatomy)
        built_s = time.perf_counter() - start
        codes = [w.code for w in field_of_view_warnings(model)]
        total_s = time.perf_counter() - start
        del model
        rows.append(
            [
                name,
                "×".join(map(str, image.shape)),
                f"{image.array.size / 1e6:.1f}",
                f"{built_s:.2f}",
                f"{total_s:.2f}",
                f"{peak_memory_bytes() / 2**20:.0f}",
                ", ".join(codes) or "–",
            ]
        )
    header = ["case", "voxels", "Mvoxels", "body model (s)", "with warnings (s)", "peak RSS (MB)", "warnings"]
    print(markdown_table(header, rows))
    print(f"\ncopy bandwidth {copy_bandwidth_gb_s():.1f} GB/s; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
