"""Accuracy and cost of the engine's super steps against plain explicit steps (prints a table).

Each case is run at the default longest super step (`SUPER_STEP_S`), at a longer one, and with explicit steps
just under the forward-Euler limit; the table gives the 0/−20/−40 °C volumes' deviation from the explicit run,
the wall time and the voxel updates. With ``--preview``, the 2 mm previews (`simulate(preview=True)`) instead:
each case at the default steps, as a preview, and as a preview with 30 s steps, against the default steps.

Usage: ``python benchmarks/time_steps.py [--grid-mm 1.0] [--preview]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from common import markdown_table

from cryoplan.thermal import TISSUES, parse_protocol, simulate, solver
from cryoplan.thermal.chart import chart_grid, probe_layout
from cryoplan.thermal.solver import SUPER_STEP_S

CASES = (("17g-sphere", 1, "freeze:2,passive_thaw:1,freeze:1"), ("1.7mm", 2, "freeze:3,passive_thaw:2,freeze:3"))
#: The previews' cases: the three probes of `benchmarks/thermal.py` (f) and the one probe of the preview test.
PREVIEW_CASES = (
    ("1.7mm", 3, "freeze:10,passive_thaw:5,freeze:10"),
    ("17g-sphere", 1, "freeze:4,passive_thaw:2,freeze:4"),
)
PREVIEW_GRID_MM = 2.0
ISOTHERMS_C = (0.0, -20.0, -40.0)


def timed(grid, probes, protocol, **options):
    started = time.perf_counter()
    result = simulate(grid, probes, protocol, tissues=TISSUES["liver"], **options)
    return result, time.perf_counter() - started


def preview_runs(grid, probes, protocol) -> dict:
    """The default steps (the reference), the preview, and the preview at 30 s steps."""
    runs = {"default": timed(grid, probes, protocol), "preview": timed(grid, probes, protocol, preview=True)}
    longest = solver.PREVIEW_SUPER_STEP_S
    solver.PREVIEW_SUPER_STEP_S = 30.0
    try:
        runs["preview, 30 s steps"] = timed(grid, probes, protocol, preview=True)
    finally:
        solver.PREVIEW_SUPER_STEP_S = longest
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid-mm", type=float, default=1.0)
    parser.add_argument("--preview", action="store_true", help="the 2 mm previews against the default steps")
    args = parser.parse_args(argv)
    grid_mm = PREVIEW_GRID_MM if args.preview else args.grid_mm
    rows = []
    for probe_id, count, protocol_text in PREVIEW_CASES if args.preview else CASES:
        probes = probe_layout(probe_id, count=count, spacing_mm=20.0 if args.preview else 15.0,
                              layout="triangle" if count == 3 else "line")  # fmt: skip
        protocol = parse_protocol(protocol_text)
        grid = chart_grid(probes, TISSUES["liver"], protocol, grid_mm)
        if args.preview:
            runs = preview_runs(grid, probes, protocol)
            reference = runs["default"][0]
        else:
            explicit_step = 0.9 * 0.137 * grid_mm**2  # under the limit for liver (0.13–0.14 s at 1 mm)
            runs = {
                label: timed(grid, probes, protocol, time_step_s=step)
                for label, step in (("explicit", explicit_step), ("default", None), ("2 × default", 2 * SUPER_STEP_S))
            }
            reference = runs["explicit"][0]
        for label, (result, seconds) in runs.items():
            print(f"{probe_id} × {count}, {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
            deviation = " / ".join(
                f"{100 * (result.isotherm_volume_ml(t) / reference.isotherm_volume_ml(t) - 1):+.2f}"
                for t in ISOTHERMS_C
            )
            rows.append(
                [
                    f"{count} × {probe_id}, {protocol_text}",
                    label,
                    f"{result.time_step_s:.2f}",
                    deviation,
                    f"{seconds:.1f}",
                    f"{result.voxel_updates / 1e9:.3f}",
                ]
            )
    print(
        markdown_table(
            [
                f"case (liver, {grid_mm:g} mm)",
                "steps",
                "longest step (s)",
                f"0 / −20 / −40 °C volume vs {'default steps' if args.preview else 'explicit'} (%)",
                "wall (s)",
                "voxel updates (10⁹)",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
