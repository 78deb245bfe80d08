"""Uncertainty benchmark: the 50-sample analysis of the plan of `benchmarks/planning.py`'s 30 mm lesion (5 mm
margin, phantom), on the default LocalCluster (one single-threaded worker per core, samples in batches), and
what one sample costs with the default super steps and with the preview's (which the samples take on grids of
`solver.PREVIEW_SPACING_MM` and coarser), with the lethal volume and coverage of each.

The plan is made once (minutes) and its sampling context kept in ``--context`` (a pickle), so that a re-run
measures the sampling alone. Times are also given as ratios to the peer stencil (`common.peer_stencil_s`), timed
in the same process.

    .venv/bin/python benchmarks/uncertainty.py [--samples 50] [--grid-mm 2.0] [--context /tmp/context.pkl]
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numba
import numpy as np
from common import markdown_table, peer_stencil_s

from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.uncertainty import (
    SampleContext,
    batches,
    default_workers,
    monte_carlo,
    perturbed_probes,
    perturbed_tissues,
    sample_context,
)
from cryoplan.thermal import parse_protocol, simulate

#: Samples each compared with the default and the preview's steps, in this process, on one thread.
COMPARED_SAMPLES = 3


def planned_context(path: Path, grid_mm: float) -> SampleContext:
    """The sampling context of the benchmark lesion's plan, from `path` if it is there, else planned and kept."""
    if path.exists():
        context: SampleContext = pickle.loads(path.read_bytes())
        if context.grid.spacing_mm == grid_mm:
            return context
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 30.0)], spacing_mm=1.0, seed=0)
    settings = PlanSettings()
    plan = plan_case(phantom, settings=settings)
    context = sample_context(plan.units[0], settings, grid_mm, 2.0, 2.0, plan.anatomy)
    path.write_bytes(pickle.dumps(context))
    return context


def one_sample(context: SampleContext, index: int, preview: bool) -> tuple[float, float, float]:
    """(wall s, lethal volume ml, tumour + margin covered %) of sample `index` (seed 0) with the given steps."""
    rng = np.random.default_rng([0, index])
    probes = perturbed_probes(context.probes, rng, context.tip_sigma_mm, context.direction_sigma_deg)
    tissues, _ = perturbed_tissues(rng, context.perfusion_log_sd)
    result = simulate(
        context.grid, probes, parse_protocol(context.protocol_text), tissue_labels=context.tissue_labels,
        tissues=tissues, vessels=context.vessels, isotherms_c=(0.0, context.lethal_isotherm_c), preview=preview,
    )  # fmt: skip
    lethal = result.min_temperature_c <= context.lethal_isotherm_c
    covered = 100.0 * float(np.mean(lethal[context.margin_mask]))
    return result.elapsed_s, float(lethal.sum()) * context.grid.voxel_volume_ml, covered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--grid-mm", type=float, default=2.0)
    parser.add_argument("--context", type=Path, default=Path("/tmp/cryoplan-uncertainty-context.pkl"))
    args = parser.parse_args()
    context = planned_context(args.context, args.grid_mm)
    shape = "×".join(map(str, context.grid.shape))
    rows = [
        ["plan", f"{len(context.probes)} probes, {context.protocol_text}, sampled on {shape} at {args.grid_mm:g} mm"]
    ]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one_sample(context, 0, True)  # loads the kernels
    for index in range(COMPARED_SAMPLES):
        runs = {preview: one_sample(context, index, preview) for preview in (False, True)}
        rows.append(
            [
                f"sample {index}, one thread: default steps / preview steps",
                f"{runs[False][0]:.2f} / {runs[True][0]:.2f} s; lethal {runs[False][1]:.2f} / {runs[True][1]:.2f} ml; "
                f"tumour + margin covered {runs[False][2]:.2f} / {runs[True][2]:.2f} %",
            ]
        )
    numba.set_num_threads(threads)
    peer_s = peer_stencil_s()
    workers = default_workers()
    started = time.perf_counter()
    result = monte_carlo(context, args.samples, seed=0, workers=workers)
    wall = time.perf_counter() - started
    peer_s = min(peer_s, peer_stencil_s())
    rows.append(
        ["peer stencil: minimal parallel Numba 7-point float32 stencil, 1e9 voxel updates, 120³", f"{peer_s:.2f} s"]
    )
    rows.append(
        [
            f"uncertainty, {args.samples} samples, LocalCluster of {workers} workers, "
            f"{len(batches(args.samples, workers))} batches (cluster start included)",
            f"{wall:.1f} s = {wall / peer_s:.1f} × peer stencil; probability of success "
            f"{result.probability_of_success:.2f}",
        ]
    )
    print(markdown_table(["quantity", "measured"], rows))


if __name__ == "__main__":
    main()
