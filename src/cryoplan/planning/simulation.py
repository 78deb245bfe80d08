"""The full simulation of a plan on the patient's anatomy (large vessels as heat sinks) and its coverage;
shared by the planner, the uncertainty analysis and the re-fit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy, vessel_components
from cryoplan.planning.coverage import Coverage, RiskLimits, coverage
from cryoplan.planning.organs import tissue_map, tissue_names_on
from cryoplan.planning.search import Candidate, build_target
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import (
    TISSUES,
    Grid,
    ProbePlacement,
    ThermalResult,
    Tissue,
    Vessel,
    simulate,
)

# The full simulation's grid reaches this far beyond the target and the probes' active zones.
SIMULATION_REACH_MM = 25.0


@dataclass
class SimulatedTissues:
    """The body model's tissue name per voxel of the simulation grid (None without a body model), and the
    share of the grid beyond the image (%), where the tissue at the image's edge is continued."""

    names: np.ndarray | None
    beyond_image_pct: float


def resample_mask(mask: np.ndarray, source: Volume, grid: Grid) -> np.ndarray:
    """A mask of `source`'s grid sampled (nearest voxel) at the centres of `grid`."""
    return source.with_array(np.asarray(mask, dtype=bool)).resampled(grid.shape, grid.affine).array


def simulation_grid(target_points: np.ndarray, candidate: Candidate, spacing_mm: float) -> Grid:
    ends = []
    for probe in candidate.probes:
        placement = probe.placement()
        ends += [placement.tip_mm, *placement.active_segment_mm()]
    return Grid.around(np.vstack([target_points, np.array(ends)]), SIMULATION_REACH_MM, spacing_mm)


def simulate_plan(
    anatomy: PlanningAnatomy,
    lesion_ids: list[str],
    candidate: Candidate,
    settings: PlanSettings,
    *,
    tissues: Mapping[int, Tissue] | None = None,
    probes: Sequence[ProbePlacement] | None = None,
    progress: Callable[[float], None] | None = None,
    grid_mm: float | None = None,
    preview: bool = False,
) -> tuple[ThermalResult, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[float]], SimulatedTissues]:
    """Full simulation of a plan on the patient's anatomy, large vessels as heat sinks.

    With a body model, every voxel takes its own tissue (`cryoplan.planning.organs.tissue_map`); without
    one, everything but the tumour is liver. `tissues` overrides the tissue of each label; `preview` takes the
    engine's preview steps (`cryoplan.thermal.simulate`), checked against the default steps on 2 mm grids.

    Returns
    -------
    (ThermalResult, lesion_masks, structures, history_points, SimulatedTissues)
    """
    target = build_target(anatomy, lesion_ids, settings.margin_mm)
    grid = simulation_grid(target.margin_points, candidate, grid_mm or settings.grid_mm)
    lesion_masks = {i: resample_mask(anatomy.lesions[i], anatomy.grid, grid) for i in lesion_ids}
    tumour = np.any(np.stack(list(lesion_masks.values())), axis=0)
    large = resample_mask(anatomy.large_vessels(settings.min_vessel_calibre_mm), anatomy.grid, grid)
    vessels = [Vessel(mask, calibre) for mask, calibre in vessel_components(large, [grid.spacing_mm] * 3)]
    structures = {"liver": resample_mask(anatomy.liver, anatomy.grid, grid), "large_vessels": large}
    for name in ("bile_duct", "gallbladder"):
        mask = getattr(anatomy, name)
        if mask is not None:
            structures[name] = resample_mask(mask, anatomy.grid, grid)
    # Temperature histories at the tumour edge facing the strongest heat sink (or farthest from the
    # probes) and at the bile duct voxel nearest the tumour.
    spacing = np.full(3, grid.spacing_mm)
    surface = tumour & ~ndimage.binary_erosion(tumour)
    surface_points = grid.origin_mm + np.argwhere(surface) * grid.spacing_mm
    if large.any():
        distance = ndimage.distance_transform_edt(~large, sampling=spacing)[surface]
        edge = surface_points[int(np.argmin(distance))]
    else:
        tips = np.array([p.tip_lps_mm for p in candidate.probes])
        edge = surface_points[
            int(np.argmax(np.min(np.linalg.norm(surface_points[:, None] - tips[None], axis=-1), axis=1)))
        ]
    history_points = {"tumour edge": edge}
    duct = structures.get("bile_duct")
    if duct is not None and duct.any():
        distance = ndimage.distance_transform_edt(~tumour, sampling=spacing)
        nearest = np.unravel_index(int(np.argmin(np.where(duct, distance, np.inf))), duct.shape)
        history_points["nearest bile duct"] = grid.origin_mm + np.array(nearest) * grid.spacing_mm
    names, beyond_pct = None, 0.0
    labels = tumour.astype(np.int32)
    if anatomy.body_model is not None:
        names, beyond_pct = tissue_names_on(anatomy.body_model, grid)
        if tissues is None:
            labels, tissues = tissue_map(names, lesion_masks, structures["liver"])
    result = simulate(
        grid,
        probes if probes is not None else [p.placement() for p in candidate.probes],
        settings.protocol(candidate.freeze_minutes),
        tissue_labels=labels,
        tissues=tissues or {0: TISSUES["liver"], 1: TISSUES["tumour"]},
        vessels=vessels,
        record_points=history_points,
        isotherms_c=sorted({0.0, -20.0, -40.0, settings.lethal_isotherm_c}, reverse=True),
        progress=progress,
        preview=preview,
    )
    histories = {k: [float(x) for x in v] for k, v in history_points.items()}
    return result, lesion_masks, structures, histories, SimulatedTissues(names, beyond_pct)


def unit_coverage(
    result: ThermalResult,
    lesion_masks: dict[str, np.ndarray],
    structures: dict[str, np.ndarray],
    anatomy: PlanningAnatomy,
    settings: PlanSettings,
) -> Coverage:
    return coverage(
        result.min_temperature_c,
        [result.grid.spacing_mm] * 3,
        lesion_masks,
        liver=structures["liver"],
        bile_duct=structures.get("bile_duct"),
        vessels=structures["large_vessels"],
        gallbladder=structures.get("gallbladder"),
        lethal_isotherm_c=settings.lethal_isotherm_c,
        margin_mm=settings.margin_mm,
        heat_sink_lesions={k: v for k, v in anatomy.heat_sink.items() if k in lesion_masks},
        limits=RiskLimits(critical_temperature_c=settings.critical_temperature_c),
    )
