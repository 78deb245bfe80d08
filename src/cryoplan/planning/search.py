"""Probe placement search: how many probes, which type, where, along which path, and for how long.

The optimiser works per planning unit (one lesion, or several lesions close enough to share probes):

1. **Paths.** Straight insertion directions from a skin entry window are ranked by path length; every
   probe's path from the skin to its tip must keep a clearance from vessels of ≥ 3 mm calibre, bile
   ducts, gallbladder and bone. Probes may be parallel, or converging: entering the skin close together
   (within a small entry region around one skin point) and diverging towards their tips, which reaches a
   tumour behind a narrow intercostal window or between vessels; by default both are candidates.
2. **Fast candidates.** Each probe type's isotherm chart (one simulation of a single probe in homogeneous
   liver per freeze duration, cached) gives the minimum temperature around one probe as a function of
   the radial and axial distance from its active zone. A layout of n probes (line, triangle, square,
   pentagon, pentagon + centre) at a spacing of 10–20 mm is estimated by combining its probes' coolings,
   each read from the chart in that probe's own axial and radial frame (so converging probes are scored
   like parallel ones), with a p-norm whose exponent is fitted, per chart, on a simulated pair of probes
   (between the coldest probe alone, p = ∞, and linear superposition, p = 1). The cheapest layout
   (fewest probes, then shortest freeze, then least frozen healthy liver) whose estimate covers tumour +
   margin and spares the critical structures is the search's start.
3. **Full simulation.** From there a local search on the full simulation (`cryoplan.planning.local_search`)
   moves and tilts the probes until every lesion's margin is met everywhere; then longer freezes, then
   one more probe, each searched again (`cryoplan.planning.pipeline.plan_unit`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.planning.anatomy import PlanningAnatomy
from cryoplan.planning.charts import IsothermChart, isotherm_chart
from cryoplan.planning.coverage import margin_shell, signed_distance_mm
from cryoplan.planning.paths import PathMap, max_path_mm, probe_paths
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import Grid, ProbePlacement, get_probe
from cryoplan.thermal.probes import segment_distance_mm

# How far a layout may be pulled back along its path when a tip would reach a forbidden structure.
PULL_BACK_MM = (0.0, 4.0, 8.0, 12.0)
# Converging paths: candidate distances between neighbouring skin entries (the layout shrunk at the skin).
CONVERGING_ENTRY_SPACING_MM = (4.0, 8.0)


def layout_offsets(count: int, spacing_mm: float) -> np.ndarray:
    """In-plane positions (count, 2) of parallel probes: one, a line of two, a triangle, a square, a
    pentagon and a pentagon with a centre probe; `spacing_mm` is the side of the polygon."""
    if count == 1:
        return np.zeros((1, 2))
    if count == 2:
        return np.array([[-spacing_mm / 2, 0.0], [spacing_mm / 2, 0.0]])
    ring = count if count <= 5 else count - 1
    radius = spacing_mm / (2 * math.sin(math.pi / ring))
    angles = np.pi / 2 + 2 * np.pi * np.arange(ring) / ring
    points = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if count > 5:
        points = np.vstack([np.zeros((1, 2)), points])
    return points


def min_neighbour_distance(offsets: np.ndarray) -> float:
    if len(offsets) < 2:
        return math.inf
    distances = np.linalg.norm(offsets[:, None] - offsets[None], axis=-1)
    return float(distances[~np.eye(len(offsets), dtype=bool)].min())


def perpendicular_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(direction, e1)


def converging_spacing_ok(probes: list[ProbePlan], settings: PlanSettings) -> bool:
    """Whether converging probes keep the spacing rules where they freeze and along their tracts.

    Active zones: no two closer than the smallest allowed spacing anywhere (they come closest at their
    proximal ends), and each tip within the largest allowed spacing of its nearest neighbour (diverging
    probes are farthest apart at their tips). Shafts, from the skin to the tip: the gap between any two
    is at least the larger of their diameters.
    """
    placements = [p.placement() for p in probes]
    nearest_tip = np.full(len(probes), np.inf)
    for j, k in itertools.combinations(range(len(probes)), 2):
        first, second = placements[j], placements[k]
        active_gap = segment_distance_mm(*first.active_zone_mm(), *second.active_zone_mm())
        if active_gap < min(settings.spacing_mm) - 1e-6:
            return False
        gap = (
            segment_distance_mm(
                probes[j].entry_lps_mm, probes[j].tip_lps_mm, probes[k].entry_lps_mm, probes[k].tip_lps_mm
            )
            - first.probe.radius_mm
            - second.probe.radius_mm
        )
        if gap < 2 * max(first.probe.radius_mm, second.probe.radius_mm):
            return False
        tips = float(np.linalg.norm(probes[j].tip_lps_mm - probes[k].tip_lps_mm))
        nearest_tip[[j, k]] = np.minimum(nearest_tip[[j, k]], tips)
    return bool(np.all(nearest_tip <= max(settings.spacing_mm) + 1e-6))


@dataclass
class ProbePlan:
    """One probe of a plan."""

    probe_id: str
    tip_lps_mm: np.ndarray
    direction: np.ndarray
    entry_lps_mm: np.ndarray

    def placement(self) -> ProbePlacement:
        return ProbePlacement(self.probe_id, self.tip_lps_mm, self.direction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.probe_id,
            "tip_lps_mm": [round(float(v), 2) for v in self.tip_lps_mm],
            "direction": [round(float(v), 4) for v in self.direction],
            "entry_lps_mm": [round(float(v), 2) for v in self.entry_lps_mm],
            "path_length_mm": round(float(np.linalg.norm(self.entry_lps_mm - self.tip_lps_mm)), 1),
        }


@dataclass
class Candidate:
    """A layout with its fast estimate; `spacing_mm` is the distance between neighbouring probes at the
    centres of their active zones (None for one probe)."""

    probes: list[ProbePlan]
    freeze_minutes: float
    spacing_mm: float | None
    estimated_margin_covered_pct: float
    estimated_frozen_healthy_ml: float
    critical_ok: bool

    @property
    def cost(self) -> tuple[int, float, bool, float]:
        return (len(self.probes), self.freeze_minutes, not self.critical_ok, self.estimated_frozen_healthy_ml)


@dataclass
class Target:
    """What a planning unit must cover: its lesions' tumour + margin, as LPS points."""

    lesion_ids: list[str]
    tumour_points: np.ndarray
    margin_points: np.ndarray
    healthy_points: np.ndarray
    critical_points: np.ndarray
    voxel_ml: float
    _middles: dict[bytes, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def centre(self) -> np.ndarray:
        """The tumour points' mean (computed once: the points are read-only)."""
        centre = np.asarray(self.tumour_points.mean(axis=0))
        centre.flags.writeable = False
        return centre

    def middle(self, direction: np.ndarray) -> np.ndarray:
        """Centre of a layout's active zones along `direction`: on the axis through the target's centre,
        halfway along the axial extent of tumour + margin. Remembered per direction: the layout search asks
        for each direction's middle once per layout (13,872 times planning the 30 mm lesion of
        benchmarks/planning.py)."""
        direction = np.asarray(direction, dtype=np.float64)
        key = direction.tobytes()
        if key not in self._middles:
            axial = (self.margin_points - self.centre) @ direction
            middle = np.asarray(self.centre + direction * 0.5 * (axial.min() + axial.max()))
            middle.flags.writeable = False
            self._middles[key] = middle
        return self._middles[key]


def build_target(
    anatomy: PlanningAnatomy,
    lesion_ids: list[str],
    margin_mm: float,
    reach_mm: float = 35.0,
    max_points: int = 6000,
    seed: int = 0,
) -> Target:
    """Tumour, tumour + margin, nearby healthy liver and critical-structure points of a planning unit (built
    once per anatomy and arguments: `PlanningAnatomy.derived`)."""
    key = ("target", tuple(lesion_ids), margin_mm, reach_mm, max_points, seed)
    return anatomy.derived(key, lambda: _target(anatomy, lesion_ids, margin_mm, reach_mm, max_points, seed))


def _target(
    anatomy: PlanningAnatomy, lesion_ids: list[str], margin_mm: float, reach_mm: float, max_points: int, seed: int
) -> Target:
    grid = anatomy.grid
    tumour = np.zeros(grid.shape, dtype=bool)
    for lesion_id in lesion_ids:
        tumour |= anatomy.lesions[lesion_id]
    shell = margin_shell(tumour, margin_mm, grid.spacing_mm, anatomy.liver)
    near = ndimage.distance_transform_edt(~tumour, sampling=grid.spacing_mm) <= reach_mm
    healthy = near & anatomy.liver & ~tumour
    critical = np.zeros(grid.shape, dtype=bool)
    for mask in (anatomy.bile_duct, anatomy.gallbladder, anatomy.bowel):
        if mask is not None:
            critical |= mask & near
    rng = np.random.default_rng(seed)

    def points(mask: np.ndarray) -> np.ndarray:
        index = np.argwhere(mask)
        if len(index) > max_points:
            index = index[rng.choice(len(index), max_points, replace=False)]
        found = np.asarray(grid.index_to_lps(index))
        found.flags.writeable = False  # shared by every caller (`PlanningAnatomy.derived`)
        return found

    healthy_index = np.argwhere(healthy)
    scale = max(len(healthy_index) / max_points, 1.0)
    return Target(
        lesion_ids, points(tumour), points(shell), points(healthy), points(critical), grid.voxel_volume_ml * scale
    )


def estimate(chart: IsothermChart, tips: np.ndarray, directions: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Estimated minimum temperature at `points` under probes ending at `tips` and inserted along
    `directions` (one for parallel probes, or one per probe): each probe's cooling is read from the chart
    in that probe's own axial and radial frame, then the coolings are combined (`IsothermChart.combine`)."""
    probe = get_probe(chart.probe_id)
    coolings = []
    for tip, direction in zip(tips, np.broadcast_to(directions, np.shape(tips))):
        centre = tip - direction * (probe.tip_offset_mm + probe.active_length_mm / 2)
        offset = points - centre
        axial = offset @ direction
        radial = np.linalg.norm(offset - axial[:, None] * direction, axis=1)
        coolings.append(chart.cooling(radial, axial))
    return np.asarray(chart.combine(coolings))


def layout_in_plane(direction: np.ndarray, offsets: np.ndarray, angle: float) -> np.ndarray:
    """A layout's 2-D offsets rotated by `angle` in the plane perpendicular to `direction`, in LPS (n, 3)."""
    e1, e2 = perpendicular_basis(direction)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rotated = offsets @ rotation.T
    return np.asarray(rotated[:, :1] * e1 + rotated[:, 1:] * e2)


def candidate_tips(
    target: Target, direction: np.ndarray, offsets: np.ndarray, angle: float, probe_id: str
) -> np.ndarray:
    """Tips of a parallel layout centred on the target, its active zones centred on the target's axial extent."""
    probe = get_probe(probe_id)
    active_centres = target.middle(direction) + layout_in_plane(direction, offsets, angle)
    return np.asarray(active_centres + direction * (probe.tip_offset_mm + probe.active_length_mm / 2))


def converging_layout(
    target: Target,
    path_map: PathMap,
    direction: np.ndarray,
    offsets: np.ndarray,
    angle: float,
    probe_id: str,
    entry_scale: float,
    reach_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Tips and insertion directions of a converging layout, and its skin entry point (the hub).

    The active zones are centred where a parallel layout along `direction` would centre them; the hub
    is where the layout's central axis leaves the skin, and each probe's straight path runs from the hub
    plus its layout offset shrunk by `entry_scale` (< 1) to the centre of its active zone, so the probes
    diverge from a small entry region towards their tips. None when the central axis has no skin entry.
    """
    probe = get_probe(probe_id)
    middle = target.middle(direction)
    hub = path_map.skin_entry(middle, -direction, reach_mm)
    if hub is None:
        return None
    in_plane = layout_in_plane(direction, offsets, angle)
    active_centres = middle + in_plane
    directions = active_centres - (hub + entry_scale * in_plane)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tips = active_centres + directions * (probe.tip_offset_mm + probe.active_length_mm / 2)
    return tips, directions, hub


def candidate_layouts(
    target: Target,
    path_map: PathMap,
    settings: PlanSettings,
    direction: np.ndarray,
    offsets: np.ndarray,
    angle: float,
    probe_id: str,
    spacing_mm: float | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The probe axes a layout may take under `settings.paths`: ``(tips, directions, hub)`` with one
    direction and no hub for parallel probes, or one direction per probe and the skin entry point for
    converging probes (one per entry spacing in `CONVERGING_ENTRY_SPACING_MM` narrower than the layout)."""
    reach = max_path_mm(settings, get_probe(probe_id))
    if settings.paths == "parallel" or len(offsets) == 1 or spacing_mm is None:
        yield candidate_tips(target, direction, offsets, angle, probe_id), direction, None
        return
    for entry_spacing in CONVERGING_ENTRY_SPACING_MM:
        if entry_spacing < spacing_mm:
            layout = converging_layout(
                target, path_map, direction, offsets, angle, probe_id, entry_spacing / spacing_mm, reach
            )
            if layout is not None:
                yield layout


def search_candidates(
    target: Target,
    path_map: PathMap,
    settings: PlanSettings,
    directions: list[np.ndarray],
    min_probes: int = 1,
    progress: Callable[[], None] | None = None,
) -> list[Candidate]:
    """Every feasible layout of the smallest probe count (from `min_probes`) whose estimate meets the
    target, cheapest first (`scored_layouts`); empty when no count up to the maximum does."""
    for count in range(min_probes, settings.max_probes + 1):
        qualified, _ = scored_layouts(target, path_map, settings, directions, count, progress)
        if qualified:
            return qualified
    return []


def scored_layouts(
    target: Target,
    path_map: PathMap,
    settings: PlanSettings,
    directions: list[np.ndarray],
    count: int,
    progress: Callable[[], None] | None = None,
) -> tuple[list[Candidate], list[Candidate]]:
    """The layouts of `count` probes scored on the charts once: (those whose estimate meets the target;
    every feasible one with its estimate), each cheapest first. With ``paths="any"`` a probe type's converging
    layouts are scored only when none of its parallel ones qualifies (parallel probes are the simpler
    procedure; converging ones reach where ribs or vessels pull parallel tips back, and a thick probe may need
    them where a thin one passes in parallel); its feasible layouts are its parallel ones when it has any."""
    qualified: list[Candidate] = []
    feasible: list[Candidate] = []
    for probe_id in settings.probe_types:
        one_type = replace(settings, probe_types=(probe_id,))
        kind = "parallel" if settings.paths == "any" else settings.paths
        layouts = layouts_of(target, path_map, replace(one_type, paths=kind), directions, count, progress)
        meeting = [c for c in layouts if c.estimated_margin_covered_pct >= settings.coverage_target_pct]
        if settings.paths == "any" and not meeting and count > 1:
            converging = layouts_of(
                target, path_map, replace(one_type, paths="converging"), directions, count, progress
            )
            meeting = [c for c in converging if c.estimated_margin_covered_pct >= settings.coverage_target_pct]
            layouts = layouts or converging
        qualified += meeting
        feasible += layouts
    return sorted(qualified, key=lambda c: c.cost), sorted(feasible, key=lambda c: c.cost)


def layouts_of(
    target: Target,
    path_map: PathMap,
    settings: PlanSettings,
    directions: list[np.ndarray],
    count: int,
    progress: Callable[[], None] | None = None,
) -> list[Candidate]:
    """Every feasible layout of `count` probes (parallel or converging, as `settings.paths` says) with its
    chart estimate."""
    found: list[Candidate] = []
    angles = np.radians([0.0, 45.0, 90.0, 135.0])
    spacings = (None,) if count == 1 else settings.spacing_mm
    for probe_id, minutes, spacing in itertools.product(settings.probe_types, settings.freeze_minutes, spacings):
        offsets = layout_offsets(count, spacing or 0.0)
        if count > 1 and min_neighbour_distance(offsets) < min(settings.spacing_mm) - 1e-6:
            continue
        chart = isotherm_chart(probe_id, str(settings.protocol(minutes)), settings.chart_grid_mm)
        probe = get_probe(probe_id)
        for direction, angle in itertools.product(directions, angles if count > 1 else angles[:1]):
            for centred, axes, hub in candidate_layouts(
                target, path_map, settings, direction, offsets, angle, probe_id, spacing
            ):
                # A tip that would reach a forbidden structure is pulled back along its path.
                for pull_back in PULL_BACK_MM:
                    tips = centred - pull_back * axes
                    entries = probe_paths(path_map, tips, axes, probe.radius_mm, max_path_mm(settings, probe))
                    if entries is not None:
                        break
                if entries is None:
                    continue
                axes = np.array(np.broadcast_to(axes, tips.shape))
                probes = [ProbePlan(probe_id, *path) for path in zip(tips, axes, entries)]
                if hub is not None and (
                    np.linalg.norm(entries - hub, axis=1).max() > settings.entry_radius_mm
                    or not converging_spacing_ok(probes, settings)
                ):
                    continue
                estimated = estimate(chart, tips, axes, target.margin_points)
                covered = 100.0 * float(np.mean(estimated <= settings.lethal_isotherm_c))
                frozen = float(np.sum(estimate(chart, tips, axes, target.healthy_points) <= 0.0))
                critical_ok = True
                if len(target.critical_points):
                    critical_ok = bool(
                        np.all(estimate(chart, tips, axes, target.critical_points) > settings.critical_temperature_c)
                    )
                found.append(Candidate(probes, minutes, spacing, covered, frozen * target.voxel_ml, critical_ok))
        if progress is not None:
            progress()
    return found


def thinnest_margin(
    min_temperature_c: np.ndarray, tumour: np.ndarray, grid: Grid, lethal_isotherm_c: float
) -> tuple[np.ndarray, float]:
    """(LPS point, margin mm) of the tumour voxel where the lethal zone's margin is thinnest on a simulation
    grid (`cryoplan.thermal.Grid`, isotropic)."""
    distance = signed_distance_mm(min_temperature_c <= lethal_isotherm_c, [grid.spacing_mm] * 3)
    index = np.argwhere(tumour)
    worst = index[int(np.argmin(distance[tuple(index.T)]))]
    return grid.origin_mm + worst * grid.spacing_mm, float(distance[tuple(worst)])
