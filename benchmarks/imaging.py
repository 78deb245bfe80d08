"""Benchmark: read a generated 512×512×300 CT series (uncompressed DICOM, one file per slice) with its
label map and measure its lesions; prints wall time and peak memory of that part.

    .venv/bin/python benchmarks/imaging.py [--workdir DIR] [--seed 0]

The series is the digital phantom on a 0.78 × 0.78 × 1 mm grid (400 × 400 × 300 mm) with three tumours.
Generation is not timed; the timed part runs in a fresh process so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import copy_bandwidth_gb_s, markdown_table, peak_memory_bytes

SHAPE = (512, 512, 300)
SPACING_MM = (0.78125, 0.78125, 1.0)


def generate(folder: Path, seed: int) -> None:
    from cryoplan.imaging import write_dicom_series, write_nifti
    from cryoplan.imaging.phantom import TumourSpec, make_phantom

    tumours = [
        TumourSpec((-34.0, 0.0, 20.0), 28.0),
        TumourSpec((-55.0, 10.0, -20.0), 16.0),
        TumourSpec((20.0, -20.0, 15.0), 12.0),
    ]
    field = tuple(n * s for n, s in zip(SHAPE, SPACING_MM))
    phantom = make_phantom(tumours, spacing_mm=SPACING_MM, seed=seed, field_mm=field)
    assert phantom.ct.shape == SHAPE, phantom.ct.shape
    write_dicom_series(phantom.ct, folder / "ct", seed=seed)
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    (folder / "label_map.json").write_text(json.dumps(phantom.label_map))


def measure(folder: Path) -> None:
    """The timed part (run in its own process): prints one JSON line."""
    from cryoplan.imaging import read_labels, read_volume
    from cryoplan.imaging.anatomy import anatomy_from_labels, measure_lesions

    start = time.perf_counter()
    image = read_volume(folder / "ct")
    read_s = time.perf_counter() - start
    labels = read_labels(folder / "labels.nii.gz", image)
    anatomy = anatomy_from_labels(labels, mapping=json.loads((folder / "label_map.json").read_text()))
    lesions = measure_lesions(anatomy)
    total_s = time.perf_counter() - start
    peak_mb = peak_memory_bytes() / 2**20
    print(
        json.dumps(
            {
                "shape": list(image.shape),
                "read_series_s": round(read_s, 2),
                "read_and_measure_s": round(total_s, 2),
                "peak_memory_mb": round(peak_mb),
                "lesions": [
                    {
                        "id": lesion.id,
                        "max_diameter_mm": round(lesion.max_diameter_mm, 1),
                        "nearest_vessel": lesion.nearest_vessel,
                    }
                    for lesion in lesions
                ],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Folder for the generated series (default: a temporary one)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        measure(args.measure)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        print(f"generating a {SHAPE[0]}×{SHAPE[1]}×{SHAPE[2]} CT series …", file=sys.stderr)
        generate(folder, args.seed)
        result = subprocess.run(
            [sys.executable, __file__, "--measure", str(folder)], capture_output=True, text=True, check=True
        )
        figures = json.loads(result.stdout)
    header = [
        "task",
        "shape",
        "read series (s)",
        "read + measure (s)",
        "peak memory (MiB)",
        "lesions",
        "copy bandwidth (GB/s)",
    ]
    row = [
        "read DICOM series + labels, measure lesions",
        "×".join(map(str, figures["shape"])),
        f"{figures['read_series_s']:.1f}",
        f"{figures['read_and_measure_s']:.1f}",
        f"{figures['peak_memory_mb']}",
        str(len(figures["lesions"])),
        f"{copy_bandwidth_gb_s():.1f}",
    ]
    print(markdown_table(header, [row]))


if __name__ == "__main__":
    main()
