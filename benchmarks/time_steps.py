"""Accuracy and cost of the engine's super steps against plain explicit steps (prints a table).

Each case is run at the default longest super step (`SUPER_STEP_S`), at a longer one, and with explicit steps
just under the forward-Euler limit; the table gives the 0/−20/−40 °C volumes' deviation from the explicit run,
the wall time and the voxel updates. Usage: ``python benchmarks/time_steps.py [--grid-mm 1.0]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from common import markdown_table

from cryoplan.thermal import TISSUES, parse_protocol, simulate
from cryoplan.thermal.chart import chart_grid, probe_layout
from cryoplan.thermal.solver import SUPER_STEP_S

CASES = (("17g-sphere", 1, "freeze:2,passive_thaw:1,freeze:1"), ("1.7mm", 2, "freeze:3,passive_thaw:2,freeze:3"))
ISOTHERMS_C = (0.0, -20.0, -40.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid-mm", type=float, default=1.0)
    args = parser.parse_args(argv)
    rows = []
    for probe_id, count, protocol_text in CASES:
        probes = probe_layout(probe_id, count=count, spacing_mm=15.0, layout="line")
        protocol = parse_protocol(protocol_text)
        grid = chart_grid(probes, TISSUES["liver"], protocol, args.grid_mm)
        explicit_step = 0.9 * 0.137 * args.grid_mm**2  # under the limit for liver (0.13–0.14 s at 1 mm)
        runs = {}
        for label, step in (("explicit", explicit_step), ("default", None), ("2 × default", 2 * SUPER_STEP_S)):
            started = time.perf_counter()
            result = simulate(grid, probes, protocol, tissues=TISSUES["liver"], time_step_s=step)
            runs[label] = (result, time.perf_counter() - started)
            print(f"{probe_id} × {count}, {label}: {runs[label][1]:.1f} s", file=sys.stderr, flush=True)
        reference = runs["explicit"][0]
        for label, (result, seconds) in runs.items():
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
                    f"{result.voxel_updates / 1e9:.2f}",
                ]
            )
    print(
        markdown_table(
            [
                "case (liver, " + f"{args.grid_mm:g} mm)",
                "steps",
                "longest step (s)",
                "0 / −20 / −40 °C volume vs explicit (%)",
                "wall (s)",
                "voxel updates (10⁹)",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
