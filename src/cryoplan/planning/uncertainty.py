"""Uncertainty of a plan: Monte Carlo over probe placement error and tissue properties, on Dask.

Each sample moves every probe tip by a normal error (σ = 2 mm along each axis by default), tilts its
direction by a normal angle (σ = 2°) about a random perpendicular axis, scales the tissue properties
within their uncertainty (latent heat ±40 %, conductivities ±10 %, perfusion log-normal with the spread the
joint calibration of the probe model found for in vivo liver, `cryoplan.thermal.calibration`), draws the
probe family's cooling (heat-transfer coefficient and cooled shaft length) from that calibration's fitted
distribution, then runs
the full simulation. The result is the probability that each
voxel reaches the lethal isotherm and the probability that the plan succeeds: that every lesion meets its
margin on the sample's lethal zone (`cryoplan.planning.coverage.margin_met`, the rule of the planner and of
`verify`), with its Wilson score interval (Wilson, J Am Stat Assoc 1927;22:209–212).

The samples run on dask.distributed: a LocalCluster of one single-threaded worker per core by default, or
an existing cluster given by its scheduler address; the code path is the same. Samples go to the workers in
batches (`BATCHES_PER_WORKER` per worker), run one after another in one task, so that the context is
unpacked and the protocol parsed once per batch and a task's overhead is shared by its samples. Every
sample draws from its own generator seeded by (seed, sample index), so the answer depends neither on the
number of workers nor on the batches or their order.

References
----------
Latent heat: 147–167 MJ/m³ measured in bovine liver (Sci Rep 2021) against the 250 MJ/m³ baseline of
cryoablation models, hence ±40 %. Perfusion: the calibrated liver perfusion and the standard deviation of
its logarithm (`cryoplan.thermal.calibration.parameter_distribution`), fitted to in vivo ice-ball
measurements.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from typing import Protocol as Structure

import numba
import numpy as np
from scipy import stats

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy, vessel_components
from cryoplan.planning.coverage import margin_met, margin_shell, zone_margin
from cryoplan.planning.search import Candidate, build_target
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.simulation import resample_mask, simulation_grid
from cryoplan.progress import Progress
from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Protocol, Tissue, Vessel, parse_protocol, simulate
from cryoplan.thermal.calibration import PROBE_PARAMETERS, draw_parameters, parameter_distribution
from cryoplan.thermal.probes import family_parameters, get_probe, probes_too_close
from cryoplan.thermal.solver import PREVIEW_SPACING_MM

TIP_SIGMA_MM = 2.0
DIRECTION_SIGMA_DEG = 2.0
LATENT_HEAT_RANGE = (0.6, 1.4)  # ±40 % (module References)
CONDUCTIVITY_RANGE = (0.9, 1.1)
BATCHES_PER_WORKER = 3
"""Batches each worker gets: few enough that a task's overhead is shared by several samples, enough that the
workers finish together and the progress bar moves."""


def calibrated_perfusion_log_sd() -> float:
    """Standard deviation of the natural log of liver perfusion in the calibrated parameter distribution."""
    distribution = parameter_distribution()
    k = distribution["names"].index("liver_perfusion_1_s")
    return float(np.sqrt(distribution["log_covariance"][k, k]))


def default_workers() -> int:
    """Worker processes of the default LocalCluster: one per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class SampleContext:
    """What one Monte Carlo sample needs; shipped to the workers once."""

    grid: Grid
    tissue_labels: np.ndarray
    vessels: list[Vessel]
    probes: list[ProbePlacement]
    protocol_text: str
    margin_mask: np.ndarray
    lesion_masks: list[np.ndarray]
    margin_mm: float
    lethal_isotherm_c: float
    tip_sigma_mm: float
    direction_sigma_deg: float
    perfusion_log_sd: float


def perturbed_probes(
    probes: list[ProbePlacement], rng: np.random.Generator, tip_sigma_mm: float, direction_sigma_deg: float
) -> list[ProbePlacement]:
    """Probes with a normal tip error (σ per axis) and a direction tilted by a normal angle, drawn again while
    two of them would pass through each other (`probes_too_close`): a needle cannot be placed through another,
    so the errors are those of layouts that can be placed."""
    while True:
        moved = []
        for probe in probes:
            tip = probe.tip_mm + rng.normal(0.0, tip_sigma_mm, 3)
            axis = np.cross(probe.direction, rng.normal(size=3))
            axis /= np.linalg.norm(axis)
            angle = np.radians(rng.normal(0.0, direction_sigma_deg))
            d = probe.direction
            # Rodrigues' rotation of the direction about `axis` (perpendicular to it).
            direction = d * np.cos(angle) + np.cross(axis, d) * np.sin(angle)
            moved.append(ProbePlacement(probe.probe_id, tip, direction, probe.flow_fraction))
        if probes_too_close(moved) is None:
            return moved


def perturbed_tissues(rng: np.random.Generator, perfusion_log_sd: float) -> tuple[dict[int, Tissue], dict[str, float]]:
    """Liver and tumour with latent heat and conductivities drawn within their ranges, and perfusion scaled by a
    log-normal factor (median 1, the calibrated liver perfusion being the library's) of the given log sd."""
    factors = {
        "latent_heat": float(rng.uniform(*LATENT_HEAT_RANGE)),
        "perfusion": float(np.exp(rng.normal(0.0, perfusion_log_sd))),
        "conductivity": float(rng.uniform(*CONDUCTIVITY_RANGE)),
    }

    def scaled(tissue: Tissue) -> Tissue:
        return tissue.replace(
            latent_heat_j_m3=tissue.latent_heat_j_m3 * factors["latent_heat"],
            perfusion_1_s=tissue.perfusion_1_s * factors["perfusion"],
            conductivity_unfrozen_w_mk=tissue.conductivity_unfrozen_w_mk * factors["conductivity"],
            conductivity_frozen_w_mk=tissue.conductivity_frozen_w_mk * factors["conductivity"],
        )

    return {0: scaled(TISSUES["liver"]), 1: scaled(TISSUES["tumour"])}, factors


def perturbed_cooling(rng: np.random.Generator) -> dict[str, float]:
    """The probe family's cooling (heat-transfer coefficient, cooled shaft length) of one joint draw of the
    calibrated parameters (`cryoplan.thermal.calibration.draw_parameters`: log-normal with the fitted
    covariance)."""
    drawn = draw_parameters(rng)
    return {name: drawn[name] for name in PROBE_PARAMETERS}


def sample_margin_mm(context: SampleContext, lethal: np.ndarray) -> float:
    """The thinnest minimal lethal margin of the unit's lesions on a sample's lethal zone (mm)."""
    spacing = [context.grid.spacing_mm] * 3
    return min(zone_margin(mask, lethal, spacing).min_margin_mm for mask in context.lesion_masks)


def margin_succeeds(context: SampleContext, margin_mm: float) -> bool:
    """Whether a sample's thinnest margin (`sample_margin_mm`) meets the margin (`margin_met`)."""
    return margin_met(margin_mm, context.margin_mm, [context.grid.spacing_mm] * 3)


def run_sample(
    context: SampleContext, protocol: Protocol, index: int, seed: int
) -> tuple[int, np.ndarray, float, float, dict[str, float]]:
    """One Monte Carlo sample: (index, packed lethal mask, tumour + margin covered %, the thinnest lesion
    margin (`sample_margin_mm`), factors)."""
    rng = np.random.default_rng([seed, index])
    probes = perturbed_probes(context.probes, rng, context.tip_sigma_mm, context.direction_sigma_deg)
    tissues, factors = perturbed_tissues(rng, context.perfusion_log_sd)
    cooling = perturbed_cooling(rng)
    factors.update(cooling)
    with ExitStack() as stack:
        for family in sorted({get_probe(p.probe_id).family for p in probes}):
            stack.enter_context(family_parameters(family, **cooling))
        result = simulate(
            context.grid,
            probes,
            protocol,
            tissue_labels=context.tissue_labels,
            tissues=tissues,
            vessels=context.vessels,
            isotherms_c=(0.0, context.lethal_isotherm_c),
            # A sample's error from the preview's steps (a few voxels of its lethal mask) is far below the
            # sampling error.
            preview=context.grid.spacing_mm >= PREVIEW_SPACING_MM,
        )
    lethal = result.min_temperature_c <= context.lethal_isotherm_c
    covered = 100.0 * float(np.mean(lethal[context.margin_mask]))
    return index, np.packbits(lethal.ravel()), covered, sample_margin_mm(context, lethal), factors


def run_batch(
    context: SampleContext, indices: list[int], seed: int
) -> list[tuple[int, np.ndarray, float, float, dict[str, float]]]:
    """The samples `indices`, one after another (`run_sample`).

    The simulation's kernels run on one thread: the batches are the parallelism (one per Dask worker
    thread), and a worker whose kernels also spread over every core would compete with its peers."""
    numba.set_num_threads(1)
    protocol = parse_protocol(context.protocol_text)
    return [run_sample(context, protocol, index, seed) for index in indices]


def batches(samples: int, workers: int) -> list[list[int]]:
    """Sample indices 0 … samples − 1 cut into at most `BATCHES_PER_WORKER` batches per worker, in order."""
    count = min(samples, max(1, workers) * BATCHES_PER_WORKER)
    size = math.ceil(samples / count)
    return [list(range(start, min(start + size, samples))) for start in range(0, samples, size)]


def wilson_interval(successes: int, samples: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (two-sided, `level`; Wilson, J Am Stat Assoc
    1927;22:209–212)."""
    if samples == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / samples
    centre = (p + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples)) / (1 + z * z / samples)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class UncertaintyResult:
    """Outcome of the Monte Carlo analysis of one planning unit.

    Attributes
    ----------
    margin_met : numpy.ndarray of bool
        Per sample, whether every lesion met its margin (`margin_succeeds`).
    margin_covered_pct : numpy.ndarray
        Per sample, the share of tumour + margin covered (a figure, not the criterion).
    """

    samples: int
    seed: int
    probability: Volume
    margin_covered_pct: np.ndarray
    margin_met: np.ndarray
    margin_mm: float
    tip_sigma_mm: float
    direction_sigma_deg: float
    scheduler: str
    workers: int
    elapsed_s: float

    @property
    def probability_of_success(self) -> float:
        """Share of the samples in which every lesion met its margin."""
        return float(np.mean(self.margin_met))

    @property
    def interval(self) -> tuple[float, float]:
        """95 % Wilson score interval of `probability_of_success`."""
        return wilson_interval(int(np.sum(self.margin_met)), self.samples)

    def to_dict(self) -> dict[str, Any]:
        values = self.margin_covered_pct
        low, high = self.interval
        return {
            "samples": self.samples,
            "seed": self.seed,
            "tip_sigma_mm": self.tip_sigma_mm,
            "direction_sigma_deg": self.direction_sigma_deg,
            "margin_mm": self.margin_mm,
            "probability_of_success": round(self.probability_of_success, 4),
            "probability_interval_95": [round(low, 4), round(high, 4)],
            "margin_covered_pct": {
                "median": round(float(np.median(values)), 2),
                "p05": round(float(np.percentile(values, 5)), 2),
                "min": round(float(values.min()), 2),
                "max": round(float(values.max()), 2),
            },
            "scheduler": self.scheduler,
            "workers": self.workers,
            "elapsed_s": round(self.elapsed_s, 2),
        }


class PlannedUnit(Structure):
    """A planning unit's lesions and plan, as the sampling takes them (a `cryoplan.planning.pipeline.UnitPlan`
    or a `cryoplan.planning.robust.PlanUnderTest`)."""

    lesion_ids: list[str]
    candidate: Candidate


def sample_context(
    unit: PlannedUnit,
    settings: PlanSettings,
    grid_mm: float | None,
    tip_sigma_mm: float,
    direction_sigma_deg: float,
    anatomy: PlanningAnatomy,
) -> SampleContext:
    """The unit's final simulation set-up, on the uncertainty grid (the final grid unless given)."""
    target = build_target(anatomy, unit.lesion_ids, settings.margin_mm)
    grid = simulation_grid(target.margin_points, unit.candidate, grid_mm or settings.grid_mm)
    tumour = np.zeros(grid.shape, dtype=bool)
    for lesion_id in unit.lesion_ids:
        tumour |= resample_mask(anatomy.lesions[lesion_id], anatomy.grid, grid)
    liver = resample_mask(anatomy.liver, anatomy.grid, grid)
    large = resample_mask(anatomy.large_vessels(settings.min_vessel_calibre_mm), anatomy.grid, grid)
    return SampleContext(
        grid=grid,
        tissue_labels=tumour.astype(np.int32),
        vessels=[Vessel(m, c) for m, c in vessel_components(large, [grid.spacing_mm] * 3)],
        probes=[p.placement() for p in unit.candidate.probes],
        protocol_text=str(settings.protocol(unit.candidate.freeze_minutes)),
        margin_mask=margin_shell(tumour, settings.margin_mm, [grid.spacing_mm] * 3, liver),
        lesion_masks=[resample_mask(anatomy.lesions[i], anatomy.grid, grid) for i in unit.lesion_ids],
        margin_mm=settings.margin_mm,
        lethal_isotherm_c=settings.lethal_isotherm_c,
        tip_sigma_mm=tip_sigma_mm,
        direction_sigma_deg=direction_sigma_deg,
        perfusion_log_sd=calibrated_perfusion_log_sd(),
    )


def monte_carlo(
    context: SampleContext,
    samples: int,
    *,
    seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> UncertaintyResult:
    """Run `samples` Monte Carlo samples on Dask and gather the probability map.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler; None starts a LocalCluster of `workers`
        single-threaded worker processes for the duration of the run.
    workers : int, optional
        Worker processes of the LocalCluster; None: one per core (`default_workers`).
    progress : callable, optional
        ``progress(label, fraction)`` as in `plan_case`, called after each batch.
    """
    # dask.distributed takes about a second to import, and only this function needs it.
    from distributed import Client, LocalCluster, as_completed

    if samples < 1:
        raise InputError("uncertainty", "at least one sample", samples)
    if workers is not None and workers < 1:
        raise InputError("workers", "at least one worker process", workers)
    started = time.perf_counter()
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]  # distributed is not annotated
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: another cluster may hold the default one
                silence_logs=40,
            )
            client = Client(cluster)  # type: ignore[no-untyped-call]  # distributed is not annotated
        else:
            try:
                client = Client(scheduler, timeout=15)  # type: ignore[no-untyped-call]  # distributed is not annotated
            except (OSError, TimeoutError) as error:
                raise InputError(
                    "scheduler", "the address of a running Dask scheduler (tcp://HOST:PORT)", scheduler
                ) from error
        with client:
            worker_count = len(client.scheduler_info()["workers"])
            shared = client.scatter(context, broadcast=True)  # type: ignore[no-untyped-call]  # distributed is not annotated
            futures = [
                client.submit(run_batch, shared, batch, seed, pure=False) for batch in batches(samples, worker_count)
            ]
            if progress:
                progress(f"uncertainty: {samples} samples on {worker_count} Dask workers", 0.0)
            counts = np.zeros(int(np.prod(context.grid.shape)), dtype=np.uint32)
            covered = np.zeros(samples)
            met = np.zeros(samples, dtype=bool)
            done = 0
            for future in as_completed(futures):  # type: ignore[no-untyped-call]  # distributed is not annotated
                for index, packed, pct, thinnest_mm, _ in future.result():
                    counts += np.unpackbits(packed, count=counts.size).astype(np.uint32)
                    covered[index] = pct
                    met[index] = margin_succeeds(context, thinnest_mm)
                    done += 1
                if progress:
                    progress(None, done / samples)
    finally:
        if cluster is not None:
            cluster.close()
    probability = (counts / samples).reshape(context.grid.shape).astype(np.float32)
    return UncertaintyResult(
        samples=samples,
        seed=seed,
        probability=Volume(probability, context.grid.affine),
        margin_covered_pct=covered,
        margin_met=met,
        margin_mm=context.margin_mm,
        tip_sigma_mm=context.tip_sigma_mm,
        direction_sigma_deg=context.direction_sigma_deg,
        scheduler=scheduler or "LocalCluster",
        workers=worker_count,
        elapsed_s=time.perf_counter() - started,
    )


def run_uncertainty(
    anatomy: PlanningAnatomy,
    unit: PlannedUnit,
    settings: PlanSettings,
    *,
    samples: int,
    scheduler: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    grid_mm: float | None = None,
    workers: int | None = None,
    tip_sigma_mm: float = TIP_SIGMA_MM,
    direction_sigma_deg: float = DIRECTION_SIGMA_DEG,
) -> UncertaintyResult:
    """Monte Carlo uncertainty of one planning unit's final plan (see the module docstring)."""
    context = sample_context(unit, settings, grid_mm, tip_sigma_mm, direction_sigma_deg, anatomy)
    return monte_carlo(
        context,
        samples,
        seed=seed,
        scheduler=scheduler,
        workers=workers,
        progress=progress,
    )
