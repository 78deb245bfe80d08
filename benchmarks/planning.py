"""Planning benchmarks.

(a) Planning a 30 mm lesion with a 5 mm margin on the phantom, final full simulation (1 mm grid, vessels)
    included: wall time of a cold run (isotherm charts and kernel compilation included) and of a warm run,
    the plan, its margin and the simulations the search ran (each search and check on a row of its own).
(b) The uncertainty analysis of that plan, 50 samples by default, on the default LocalCluster (one
    single-threaded worker per core, samples in batches), with a progress bar showing the time left; with
    ``--compare-one-worker`` also on one worker, and the speed-up.
(c) With ``--robust``: the same lesion planned robustly (probability of success ≥ 0.9 by the sequential test,
    60 samples at most per candidate, on 2 mm grids), its wall time and probability.

Run:  .venv/bin/python benchmarks/planning.py [--samples 50] [--uncertainty-grid-mm 2.0] [--skip-uncertainty]
      [--compare-one-worker] [--robust] [--warm-only]
Prints a table with the machine's measured copy bandwidth and the peer stencil's time (`common.peer_stencil_s`)
for context; wall times are also given as ratios to the latter.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from common import copy_bandwidth_gb_s, peer_stencil_s
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.uncertainty import batches, default_workers, monte_carlo, sample_context


def with_progress_bar(run):
    """Call ``run(progress)`` with a rich progress bar (time elapsed and left) fed by `progress`."""
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("", total=1.0)

        def progress(label, fraction):
            if label is not None:
                bar.update(task, description=label)
            bar.update(task, completed=fraction)

        return run(progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--uncertainty-grid-mm", type=float, default=2.0)
    parser.add_argument("--skip-uncertainty", action="store_true")
    parser.add_argument("--compare-one-worker", action="store_true")
    parser.add_argument("--robust", action="store_true")
    parser.add_argument("--warm-only", action="store_true", help="plan once (charts cached, kernels compiled)")
    args = parser.parse_args()
    peer_s = peer_stencil_s()
    rows = [
        ("cores", os.cpu_count(), ""),
        ("copy bandwidth", f"{copy_bandwidth_gb_s():.1f}", "GB/s"),
        ("peer stencil (1e9 voxel updates, 120³, parallel Numba)", f"{peer_s:.2f}", "s"),
    ]
    # A 30 mm HCC in segment 8 of the phantom, where its right lobe is farthest from vessels.
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 30.0)], spacing_mm=1.0, seed=0)
    settings = PlanSettings()
    for label in ("warm",) if args.warm_only else ("cold", "warm"):
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
    rows.append(("  min margin (margin met)", f"{lesion.min_margin_mm:.2f} ({lesion.margin_met})", "mm"))
    searched = sum(s.get("simulations", 0) for s in unit.simulations if s["stage"] == "search")
    checks = sum(s["stage"] == "check" for s in unit.simulations)
    rows.append(("  coarse simulations, checks on the plan grid", f"{searched}, {checks}", ""))
    for step in unit.simulations:
        layout = f"{step['probes']} × {step['probe_type']}, {step['freeze_minutes']:g} min"
        if step["stage"] == "search":
            label = f"    search {layout}, goal {step['goal_mm']:.2f} mm"
            value = f"{step['simulations']} simulations, moves {', '.join(step['moves']) or 'none'}:"
        else:
            label, value = f"    check {layout}", f"{step['elapsed_s']:.1f} s:"
        rows.append((label, f"{value} {step['min_margin_mm']} mm (met {step['margin_met']})", ""))
    if not args.skip_uncertainty:
        context = sample_context(unit, settings, args.uncertainty_grid_mm, 2.0, 2.0, plan.anatomy)
        workers = default_workers()
        counts = [workers, 1] if args.compare_one_worker and workers > 1 else [workers]
        timings = {}
        for count in counts:
            result = with_progress_bar(
                lambda progress, count=count: monte_carlo(
                    context, args.samples, seed=0, workers=count, progress=progress
                )
            )
            timings[count] = result.elapsed_s
            rows.append(
                (
                    f"uncertainty {args.samples} samples, LocalCluster {count} worker(s), "
                    f"{len(batches(args.samples, count))} batches, {args.uncertainty_grid_mm:g} mm grid "
                    f"{'×'.join(map(str, context.grid.shape))}",
                    f"{result.elapsed_s:.1f} s = {result.elapsed_s / peer_s:.1f} × peer stencil;",
                    f"{result.elapsed_s / args.samples:.2f} s per sample",
                )
            )
        if len(timings) == 2:
            rows.append((f"  speed-up {workers} workers over 1", f"{timings[1] / timings[workers]:.2f}", "×"))
        low, high = result.interval
        rows.append(("  P(every margin met)", f"{result.probability_of_success:.2f} (95 % {low:.2f}–{high:.2f})", ""))
    if args.robust:
        robust = replace(settings, robust_samples=60, confidence=0.9, grid_mm=2.0)
        started = time.perf_counter()
        plan = plan_case(phantom, settings=robust)
        elapsed = time.perf_counter() - started
        unit = plan.units[0]
        rows.append(
            ("robust plan (P ≥ 0.9, 2 mm grids)", f"{elapsed:.1f} s = {elapsed / peer_s:.1f} × peer stencil", "")
        )
        rows.append(
            (
                "  probes × type, freeze",
                f"{len(unit.candidate.probes)} × {unit.candidate.probes[0].probe_id}, "
                f"{unit.candidate.freeze_minutes:g} min",
                "",
            )
        )
        if unit.success is not None:
            low, high = unit.success.interval
            rows.append(
                (
                    "  probability of success",
                    f"{unit.success.probability:.2f} (95 % {low:.2f}–{high:.2f}, {unit.success.samples} samples, "
                    f"{unit.success.decision or 'undecided'})",
                    "",
                )
            )
        rows.append(("  flags", ", ".join(r.code for r in unit.coverage.risks) or "none", ""))
    width = max(len(r[0]) for r in rows)
    for name, value, unit_name in rows:
        print(f"{name:<{width}}  {value} {unit_name}".rstrip())


if __name__ == "__main__":
    main()
