"""Planning benchmarks (issue 5).

(a) Planning a 30 mm lesion with a 5 mm margin on the phantom, final full simulation (1 mm grid, vessels)
    included: wall time of a cold run (isotherm charts and kernel compilation included) and of a warm run.
(b) Uncertainty with 64 samples on a LocalCluster of 2 workers and of 1 worker, and the speed-up.

Run:  .venv/bin/python benchmarks/planning.py [--samples 64] [--uncertainty-grid-mm 2.0] [--skip-uncertainty]
Prints a table with the machine's measured copy bandwidth for context.
"""

from __future__ import annotations

import argparse
import os
import time

from common import copy_bandwidth_gb_s

from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.uncertainty import monte_carlo, sample_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--uncertainty-grid-mm", type=float, default=2.0)
    parser.add_argument("--skip-uncertainty", action="store_true")
    args = parser.parse_args()
    rows = [("cores", os.cpu_count(), ""), ("copy bandwidth", f"{copy_bandwidth_gb_s():.1f}", "GB/s")]
    # A 30 mm HCC in segment 8 of the phantom, where its right lobe is farthest from vessels.
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 30.0)], spacing_mm=1.0, seed=0)
    settings = PlanSettings()
    for label in ("cold", "warm"):
        started = time.perf_counter()
        plan = plan_case(phantom, settings=settings)
        elapsed = time.perf_counter() - started
        unit = plan.units[0]
        lesion = unit.coverage.lesions[0]
        rows.append((f"plan 30 mm lesion, 5 mm margin ({label})", f"{elapsed:.1f}", "s"))
    rows.append(("  final simulation (1 mm grid, vessels)", f"{plan.timing_s['final_simulation_s']:.1f}", "s"))
    rows.append(
        (
            "  probes × type, freeze",
            f"{len(unit.candidate.probes)} × {unit.candidate.probes[0].probe_id}, "
            f"{unit.candidate.freeze_minutes:g} min",
            "",
        )
    )
    rows.append(("  tumour + 5 mm covered", f"{lesion.margin_covered_pct:.1f}", "%"))
    rows.append(("  full simulations run", f"{len(unit.simulations)}", ""))
    if not args.skip_uncertainty:
        context = sample_context(unit, settings, args.uncertainty_grid_mm, 2.0, 2.0, plan.anatomy)
        timings = {}
        for workers in (1, 2):
            result = monte_carlo(context, args.samples, seed=0, workers=workers)
            timings[workers] = result.elapsed_s
            rows.append(
                (
                    f"uncertainty {args.samples} samples, LocalCluster {workers} worker(s), "
                    f"{args.uncertainty_grid_mm:g} mm grid",
                    f"{result.elapsed_s:.1f}",
                    "s",
                )
            )
        rows.append(("  speed-up 2 workers over 1", f"{timings[1] / timings[2]:.2f}", "×"))
        rows.append(("  P(coverage ≥ 99 %)", f"{result.probability_coverage_target:.2f}", ""))
    width = max(len(r[0]) for r in rows)
    for name, value, unit_name in rows:
        print(f"{name:<{width}}  {value} {unit_name}".rstrip())


if __name__ == "__main__":
    main()
