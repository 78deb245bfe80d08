"""Probe placement: how many probes, which type, where, along which path, and for how long.

The optimiser works per planning unit (one lesion, or several lesions close enough to share probes):

1. **Paths.** Straight insertion directions from a skin entry window are ranked by path length; every
   probe's path from the skin to its tip must keep a clearance from vessels of ≥ 3 mm calibre, bile
   ducts, gallbladder and bone. Probes are parallel by default; with converging paths they enter the
   skin close together (within a small entry region around one skin point) and diverge towards their
   tips, which reaches a tumour behind a narrow intercostal window or between vessels.
2. **Fast candidates.** Each probe type's isotherm chart (one simulation of a single probe in homogeneous
   liver per freeze duration, cached) gives the minimum temperature around one probe as a function of
   the radial and axial distance from its active zone. A layout of n probes (line, triangle, square,
   pentagon, pentagon + centre) at a spacing of 10–20 mm is estimated by combining its probes' coolings,
   each read from the chart in that probe's own axial and radial frame (so converging probes are scored
   like parallel ones), with a p-norm whose exponent is fitted, per chart, on a simulated pair of probes
   (between the coldest probe alone, p = ∞, and linear superposition, p = 1). The cheapest layout
   (fewest probes, then shortest freeze, then least frozen healthy liver) whose estimate covers tumour +
   margin and spares the critical structures is chosen.
3. **Full simulation.** The chosen plan is simulated on the patient's anatomy with its large vessels as
   heat sinks; when that simulation misses the coverage target, the plan escalates (longer freeze, then
   one more probe) and is simulated again, up to a budget. Every number reported comes from the last
   full simulation; a shortfall that remains is flagged, never hidden.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path
from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Protocol, get_probe, parse_protocol, simulate

# Needle paths keep this much tissue between their surface and a forbidden structure.
PATH_CLEARANCE_MM = 2.0
# How far a layout may be pulled back along its path when a tip would reach a forbidden structure.
PULL_BACK_MM = (0.0, 4.0, 8.0, 12.0)
# Converging paths: candidate distances between neighbouring skin entries (the layout shrunk at the skin).
CONVERGING_ENTRY_SPACING_MM = (4.0, 8.0)
PATH_KINDS = ("parallel", "converging")


@dataclass(frozen=True)
class PlanSettings:
    """Choices of the optimiser (defaults from issue 5 and physics.md §4).

    Attributes
    ----------
    lethal_isotherm_c : float
        −20 °C for a double freeze (the default protocol), −40 °C for a single one.
    margin_mm : float
        Margin around the tumour that the lethal isotherm must cover (5–10 mm).
    coverage_target_pct : float
        Share of tumour + margin the lethal isotherm must cover.
    max_probes : int
    probe_types : tuple of str
        Library probes the optimiser may use (default: the two 17G needles, the usual choice in the liver;
        any library probe may be added).
    freeze_minutes : tuple of float
        Candidate durations of each freeze (10–15 min by default).
    passive_thaw_minutes : float
        Passive thaw between the two freezes.
    freeze_count : int
        1 (single freeze) or 2 (double freeze).
    spacing_mm : tuple of float
        Candidate distances between neighbouring probes (10–20 mm).
    min_vessel_calibre_mm : float
        Vessels of at least this calibre are avoided by the paths and simulated as heat sinks.
    critical_temperature_c : float
        Bile ducts, gallbladder and bowel should stay warmer than this.
    entry_max_posterior, entry_max_craniocaudal : float
        Skin entry window: the direction from the tumour to the skin entry may point at most this far
        (as a direction cosine) posteriorly, and at most this far up or down.
    max_path_mm : float
        Longest allowed path from the skin to the tip.
    paths : {"parallel", "converging"}
        Parallel probes (one insertion direction), or converging ones: all skin entries within
        `entry_radius_mm` of one skin point, the probes diverging towards their tips.
    entry_radius_mm : float
        Radius of the skin entry region of converging paths.
    grid_mm : float
        Spacing of the final full simulation.
    chart_grid_mm : float
        Spacing of the probes' isotherm charts (they only rank candidates; the final simulation decides).
    max_full_simulations : int
        Budget of full simulations per planning unit (escalations included).
    """

    lethal_isotherm_c: float = -20.0
    margin_mm: float = 5.0
    coverage_target_pct: float = 99.0
    max_probes: int = 6
    probe_types: tuple[str, ...] = ("17g-sphere", "17g-rod")
    freeze_minutes: tuple[float, ...] = (10.0, 15.0)
    passive_thaw_minutes: float = 5.0
    freeze_count: int = 2
    spacing_mm: tuple[float, ...] = (10.0, 12.5, 15.0, 17.5, 20.0)
    min_vessel_calibre_mm: float = 3.0
    critical_temperature_c: float = -20.0
    entry_max_posterior: float = 0.5
    entry_max_craniocaudal: float = 0.6
    max_path_mm: float = 220.0
    paths: str = "parallel"
    entry_radius_mm: float = 15.0
    grid_mm: float = 1.0
    chart_grid_mm: float = 2.0
    max_full_simulations: int = 3

    def check(self) -> PlanSettings:
        """Validate the settings; `InputError` names the first bad one."""
        if not -60.0 <= self.lethal_isotherm_c <= -10.0:
            raise InputError("lethal_isotherm_c", "a lethal isotherm between −60 and −10 °C", self.lethal_isotherm_c)
        if not 0.0 <= self.margin_mm <= 10.0:
            raise InputError("margin_mm", "a margin between 0 and 10 mm", self.margin_mm)
        if not 50.0 <= self.coverage_target_pct <= 100.0:
            raise InputError("coverage_target_pct", "a target between 50 and 100 %", self.coverage_target_pct)
        if not 1 <= self.max_probes <= 8:
            raise InputError("max_probes", "1 to 8 probes", self.max_probes)
        if not self.freeze_minutes or any(not (0 < m <= 30) for m in self.freeze_minutes):
            raise InputError("freeze_minutes", "freezes of more than 0 and at most 30 minutes", self.freeze_minutes)
        if self.freeze_count not in (1, 2):
            raise InputError("freeze_count", "1 or 2 freezes", self.freeze_count)
        if not 0 < self.passive_thaw_minutes <= 30:
            raise InputError(
                "passive_thaw_minutes", "a thaw of more than 0 and at most 30 minutes", self.passive_thaw_minutes
            )
        if not self.spacing_mm or any(not (5 <= s <= 30) for s in self.spacing_mm):
            raise InputError("spacing_mm", "probe spacings between 5 and 30 mm", self.spacing_mm)
        for n, probe_id in enumerate(self.probe_types):
            get_probe(probe_id, field=f"probe_types[{n}]")
        if not self.probe_types:
            raise InputError("probe_types", "at least one probe type")
        if self.paths not in PATH_KINDS:
            raise InputError("paths", " or ".join(PATH_KINDS), self.paths)
        if not 2.0 <= self.entry_radius_mm <= 50.0:
            raise InputError("entry_radius_mm", "an entry region radius between 2 and 50 mm", self.entry_radius_mm)
        return self

    def protocol(self, minutes: float) -> Protocol:
        """The freeze–thaw protocol with freezes of `minutes`."""
        phases = [f"freeze:{minutes:g}"]
        if self.freeze_count == 2:
            phases += [f"passive_thaw:{self.passive_thaw_minutes:g}", f"freeze:{minutes:g}"]
        return parse_protocol(",".join(phases))


# ------------------------------------------------------------------------------------------ anatomy


@dataclass
class PlanningAnatomy:
    """The masks the planner needs, on the image's grid.

    Attributes
    ----------
    grid : Volume
        Geometry of every mask (its array is the CT in HU when one was given).
    liver, body : numpy.ndarray of bool
    lesions : dict
        ``{lesion_id: tumour mask}``.
    vessels : numpy.ndarray of bool
        Lumen of every vessel (all vessel classes).
    bile_duct, gallbladder, bone, bowel : numpy.ndarray of bool or None
    heat_sink : dict
        ``{lesion_id: description}`` of lesions with a vessel of ≥ 3 mm within 10 mm (from imaging).
    """

    grid: Volume
    liver: np.ndarray
    body: np.ndarray
    lesions: dict[str, np.ndarray]
    vessels: np.ndarray
    bile_duct: np.ndarray | None = None
    gallbladder: np.ndarray | None = None
    bone: np.ndarray | None = None
    bowel: np.ndarray | None = None
    heat_sink: dict[str, str] = field(default_factory=dict)

    def large_vessels(self, min_calibre_mm: float) -> np.ndarray:
        """Vessel voxels belonging to a segment of at least `min_calibre_mm` (a morphological opening:
        the union of the inscribed balls of that diameter)."""
        return large_vessel_mask(self.vessels, self.grid.spacing_mm, min_calibre_mm)

    def forbidden(self, min_calibre_mm: float) -> np.ndarray:
        """Structures no probe path may cross: large vessels, bile ducts, gallbladder, bone, bowel."""
        mask = self.large_vessels(min_calibre_mm)
        for extra in (self.bile_duct, self.gallbladder, self.bone, self.bowel):
            if extra is not None:
                mask = mask | extra
        return mask


def large_vessel_mask(vessels: np.ndarray, spacing_mm, min_calibre_mm: float) -> np.ndarray:
    """Voxels of `vessels` inside a ball of diameter `min_calibre_mm` that fits in the lumen.

    The inscribed radius at a voxel is taken as its Euclidean distance (true spacing) to the nearest voxel
    centre outside the lumen; a centre is accepted when that distance exceeds the radius less half the
    finest voxel, so that a vessel whose calibre is within a voxel of the threshold counts as large
    (the safe side for probe paths).
    """
    if not vessels.any():
        return np.zeros_like(vessels, dtype=bool)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    radius = 0.5 * min_calibre_mm
    inscribed = ndimage.distance_transform_edt(vessels, sampling=spacing)
    centres = inscribed > radius - 0.5 * spacing.min()
    if not centres.any():
        return np.zeros_like(vessels, dtype=bool)
    return (ndimage.distance_transform_edt(~centres, sampling=spacing) <= radius) & vessels


def vessel_components(lumen: np.ndarray, spacing_mm) -> list[tuple[np.ndarray, float]]:
    """Connected vessel segments with their calibre: twice the largest distance from a lumen voxel to the
    nearest voxel outside it (Euclidean distance transform with the true spacing)."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    labels, count = ndimage.label(lumen)
    inscribed = ndimage.distance_transform_edt(lumen, sampling=spacing)
    components = []
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = np.zeros(lumen.shape, dtype=bool)
        mask[box] = labels[box] == number
        calibre = float(2 * inscribed[mask].max())
        components.append((mask, calibre))
    return components


# ------------------------------------------------------------------------------------------ paths


def fibonacci_directions(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (Fibonacci lattice; González, Math Geosci 2010)."""
    index = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * index / count)
    azimuth = np.pi * (1 + 5**0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


@dataclass
class PathMap:
    """What the path check samples: the body and the clearance to forbidden structures, in LPS."""

    grid: Volume
    body: np.ndarray
    clearance_mm: np.ndarray

    @classmethod
    def build(cls, anatomy: PlanningAnatomy, min_calibre_mm: float) -> PathMap:
        forbidden = anatomy.forbidden(min_calibre_mm)
        if forbidden.any():
            clearance = ndimage.distance_transform_edt(~forbidden, sampling=anatomy.grid.spacing_mm)
        else:
            clearance = np.full(forbidden.shape, np.inf)
        return cls(anatomy.grid, anatomy.body, clearance.astype(np.float32))

    def _sample(self, array: np.ndarray, points: np.ndarray, order: int, outside: float) -> np.ndarray:
        index = self.grid.lps_to_index(points)
        return ndimage.map_coordinates(array, index.T, order=order, mode="constant", cval=outside)

    def skin_entry(self, tip: np.ndarray, outward: np.ndarray, max_path_mm: float, step_mm: float = 0.5):
        """Where the line from `tip` along `outward` leaves the body (None when it does not within reach)."""
        distances = np.arange(0.0, max_path_mm + step_mm, step_mm)
        points = tip + distances[:, None] * outward
        # Beyond the image is unknown (-1): a path that leaves the field of view inside the body has no
        # skin entry we can check.
        body = self._sample(self.body.astype(np.float32), points, 0, -1.0)
        outside = np.flatnonzero(body < 0.5)
        if outside.size == 0 or outside[0] == 0 or body[outside[0]] < 0:
            return None
        return points[outside[0]]

    def path_clearance_mm(self, tip: np.ndarray, entry: np.ndarray, step_mm: float = 0.5) -> float:
        """Smallest distance from the straight path (tip to skin entry) to a forbidden structure."""
        length = float(np.linalg.norm(entry - tip))
        samples = np.linspace(0.0, 1.0, max(int(length / step_mm), 2))
        points = tip + samples[:, None] * (entry - tip)
        return float(self._sample(self.clearance_mm, points, 1, np.inf).min())


def probe_paths(
    path_map: PathMap, tips: np.ndarray, directions: np.ndarray, probe_radius_mm: float, max_path_mm: float
):
    """Skin entries of probes ending at `tips` and inserted along `directions` (one direction for
    parallel probes, or one per probe); None if any path leaves no clearance of `PATH_CLEARANCE_MM`
    beyond the probe's radius, or is too long."""
    entries = []
    for tip, direction in zip(tips, np.broadcast_to(directions, np.shape(tips))):
        entry = path_map.skin_entry(tip, -direction, max_path_mm)
        if entry is None:
            return None
        if path_map.path_clearance_mm(tip, entry) < probe_radius_mm + PATH_CLEARANCE_MM:
            return None
        entries.append(entry)
    return np.array(entries)


def entry_directions(settings: PlanSettings, count: int = 800) -> np.ndarray:
    """Insertion directions (skin → tip) allowed by the entry window."""
    outward = fibonacci_directions(count)
    allowed = (outward[:, 1] <= settings.entry_max_posterior) & (
        np.abs(outward[:, 2]) <= settings.entry_max_craniocaudal
    )
    return -outward[allowed]


def ranked_directions(
    path_map: PathMap,
    centre: np.ndarray,
    settings: PlanSettings,
    probe_radius_mm: float,
    depth_mm: float = 0.0,
    keep: int = 8,
) -> list[np.ndarray]:
    """Feasible insertion directions to `centre`, spread at least 12° apart.

    Directions whose path stays clear down to `depth_mm` beyond the centre (where a probe's tip lies
    when its active zone is centred on the target) come first, each group shortest path first; the
    clearance also counts in the score.
    """
    scored = []
    for direction in entry_directions(settings):
        entry = path_map.skin_entry(centre, -direction, settings.max_path_mm)
        if entry is None:
            continue
        clearance = path_map.path_clearance_mm(centre, entry)
        if clearance < probe_radius_mm + PATH_CLEARANCE_MM:
            continue
        deep = path_map.path_clearance_mm(centre + depth_mm * direction, centre) >= probe_radius_mm + PATH_CLEARANCE_MM
        scored.append((not deep, float(np.linalg.norm(entry - centre)) - 0.5 * min(clearance, 20.0), direction))
    scored.sort(key=lambda item: item[:2])
    chosen: list[np.ndarray] = []
    for _, _, direction in scored:
        if all(np.dot(direction, other) < math.cos(math.radians(12)) for other in chosen):
            chosen.append(direction)
        if len(chosen) == keep:
            break
    return chosen


# ------------------------------------------------------------------------------------------ layouts


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


def segment_distance_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Smallest distance between the segments p0–p1 and q0–q1.

    The closest points minimise |p0 + s·u − q0 − t·v|² over s, t ∈ [0, 1]: the unconstrained minimum
    is clamped to the square, each parameter re-optimised given the other (Ericson, *Real-Time Collision
    Detection*, Morgan Kaufmann 2005, §5.1.9; Lumelsky, Inf Process Lett 1985;21:55–61).
    """
    u, v, w = p1 - p0, q1 - q0, p0 - q0
    a, b, c, d, e = u @ u, u @ v, v @ v, u @ w, v @ w
    denominator = a * c - b * b
    # Parallel (or degenerate) segments: any s works; take the start of the first.
    s = float(np.clip((b * e - c * d) / denominator, 0.0, 1.0)) if denominator > 1e-12 * a * c else 0.0
    t = (b * s + e) / c if c > 0 else 0.0
    if c == 0 or not 0.0 <= t <= 1.0:
        t = float(np.clip(t, 0.0, 1.0))
        s = float(np.clip((b * t - d) / a, 0.0, 1.0)) if a > 0 else 0.0
    return float(np.linalg.norm(w + s * u - t * v))


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
        active_gap = segment_distance_mm(*first.active_segment_mm(), *second.active_segment_mm())
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


# ------------------------------------------------------------------------------------------ charts


@dataclass(frozen=True)
class IsothermChart:
    """Minimum temperature around one probe in homogeneous liver, by radial distance from the probe's
    axis and axial position from the centre of its active zone (positive towards the tip), and the
    exponent that combines several probes' cooling (fitted on a simulated pair)."""

    probe_id: str
    freeze_minutes: float
    radial_mm: np.ndarray
    axial_mm: np.ndarray
    min_temperature_c: np.ndarray  # (radial, axial)
    combination_exponent: float = math.inf

    @property
    def far_field_c(self) -> float:
        return float(self.min_temperature_c.max())

    def cooling(self, radial_mm: np.ndarray, axial_mm: np.ndarray) -> np.ndarray:
        """Drop of the minimum temperature below the far field caused by one probe (K)."""
        interpolate = RegularGridInterpolator(
            (self.radial_mm, self.axial_mm), self.min_temperature_c, bounds_error=False, fill_value=self.far_field_c
        )
        return self.far_field_c - interpolate(np.stack([radial_mm, axial_mm], axis=-1))

    def combine(self, coolings: list[np.ndarray], exponent: float | None = None) -> np.ndarray:
        """Minimum temperature under several probes: the far field less the p-norm of their coolings
        (p = ∞: the coldest probe alone; p = 1: linear superposition)."""
        p = self.combination_exponent if exponent is None else exponent
        stacked = np.stack(coolings)
        total = stacked.max(axis=0) if math.isinf(p) else np.sum(stacked**p, axis=0) ** (1.0 / p)
        return self.far_field_c - total


PAIR_SPACING_MM = 15.0
COMBINATION_EXPONENTS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, math.inf)


def chart_cache_dir() -> Path:
    """Where isotherm charts are kept between runs: $CRYOPLAN_CACHE_DIR, else ~/.cache/cryoplan."""
    configured = os.environ.get("CRYOPLAN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "cryoplan"


def _engine_fingerprint() -> str:
    """Hash of the thermal engine's source and probe library: a changed engine never reuses old charts."""
    import cryoplan.thermal as thermal

    digest = hashlib.sha256()
    folder = Path(thermal.__file__).parent
    for path in sorted([*folder.glob("*.py"), *folder.glob("data/*")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=32)
def isotherm_chart(probe_id: str, protocol_text: str, grid_mm: float) -> IsothermChart:
    """Simulate one probe (along +z) in homogeneous liver and tabulate its minimum temperature; then
    simulate two probes 15 mm apart and fit the exponent that combines probes (the one whose estimate
    best reproduces the pair's 0, −20 and −40 °C volumes).

    The chart does not depend on the patient: it is cached in memory and on disk (`chart_cache_dir`),
    keyed by the probe, protocol, spacing and the engine's fingerprint.
    """
    key = hashlib.sha256(f"{probe_id}|{protocol_text}|{grid_mm}|{_engine_fingerprint()}".encode()).hexdigest()[:24]
    path = chart_cache_dir() / f"chart-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return IsothermChart(
                probe_id,
                float(stored["freeze_minutes"]),
                stored["radial_mm"],
                stored["axial_mm"],
                stored["min_temperature_c"],
                float(stored["combination_exponent"]),
            )
    chart = _simulate_chart(probe_id, protocol_text, grid_mm)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    freeze_minutes=chart.freeze_minutes,
                    radial_mm=chart.radial_mm,
                    axial_mm=chart.axial_mm,
                    min_temperature_c=chart.min_temperature_c,
                    combination_exponent=chart.combination_exponent,
                )
    except OSError:
        pass  # a read-only home only costs the next run a recomputation
    return chart


def _simulate_chart(probe_id: str, protocol_text: str, grid_mm: float) -> IsothermChart:
    probe = get_probe(probe_id)
    protocol = parse_protocol(protocol_text)
    reach_mm = 30.0
    direction = np.array([0.0, 0.0, 1.0])
    to_tip = direction * (probe.active_length_mm / 2 + probe.tip_offset_mm)
    half_length = probe.active_length_mm / 2 + reach_mm
    grid = Grid.around(np.array([[0.0, 0.0, -half_length], [0.0, 0.0, half_length]]), reach_mm, grid_mm)
    result = simulate(grid, [ProbePlacement(probe_id, to_tip, direction)], protocol, tissues=TISSUES["liver"])
    # Average over azimuth: rays in eight directions around the axis.
    radial = np.arange(0.0, reach_mm, grid_mm / 2)
    axial = grid.axis_mm(2)
    values = []
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        points = np.zeros((radial.size, axial.size, 3))
        points[..., 0] = radial[:, None] * np.cos(angle)
        points[..., 1] = radial[:, None] * np.sin(angle)
        points[..., 2] = axial[None, :]
        index = np.moveaxis(grid.index_of(points), -1, 0)
        values.append(ndimage.map_coordinates(result.min_temperature_c, index, order=1, mode="nearest"))
    chart = IsothermChart(probe_id, float(protocol.phases[0].minutes), radial, axial, np.mean(values, axis=0))
    # The pair: centres of the active zones at (±7.5, 0, 0).
    centres = np.array([[-PAIR_SPACING_MM / 2, 0, 0], [PAIR_SPACING_MM / 2, 0, 0]])
    pair_grid = Grid.around(
        np.vstack([centres - [0, 0, half_length], centres + [0, 0, half_length]]), reach_mm, grid_mm
    )
    pair = simulate(
        pair_grid,
        [ProbePlacement(probe_id, c + to_tip, direction) for c in centres],
        protocol,
        tissues=TISSUES["liver"],
    )
    points = pair_grid.centres_mm().reshape(-1, 3)
    coolings = [chart.cooling(np.linalg.norm((points - c)[:, :2], axis=1), (points - c)[:, 2]) for c in centres]
    simulated = pair.min_temperature_c.reshape(-1)
    errors = []
    for exponent in COMBINATION_EXPONENTS:
        estimated = chart.combine(coolings, exponent)
        errors.append(sum(abs(int(np.sum(estimated <= t)) - int(np.sum(simulated <= t))) for t in (0.0, -20.0, -40.0)))
    return replace(chart, combination_exponent=COMBINATION_EXPONENTS[int(np.argmin(errors))])


# ------------------------------------------------------------------------------------------ plans


@dataclass
class ProbePlan:
    """One probe of a plan."""

    probe_id: str
    tip_lps_mm: np.ndarray
    direction: np.ndarray
    entry_lps_mm: np.ndarray

    def placement(self) -> ProbePlacement:
        return ProbePlacement(self.probe_id, self.tip_lps_mm, self.direction)

    def to_dict(self) -> dict:
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
    def cost(self) -> tuple:
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

    @property
    def centre(self) -> np.ndarray:
        return self.tumour_points.mean(axis=0)


def build_target(
    anatomy: PlanningAnatomy,
    lesion_ids: list[str],
    margin_mm: float,
    reach_mm: float = 35.0,
    max_points: int = 6000,
    seed: int = 0,
) -> Target:
    """Tumour, tumour + margin, nearby healthy liver and critical-structure points of a planning unit."""
    from cryoplan.planning.coverage import margin_shell

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

    def points(mask):
        index = np.argwhere(mask)
        if len(index) > max_points:
            index = index[rng.choice(len(index), max_points, replace=False)]
        return grid.index_to_lps(index)

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
    return chart.combine(coolings)


def layout_in_plane(direction: np.ndarray, offsets: np.ndarray, angle: float) -> np.ndarray:
    """A layout's 2-D offsets rotated by `angle` in the plane perpendicular to `direction`, in LPS (n, 3)."""
    e1, e2 = perpendicular_basis(direction)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rotated = offsets @ rotation.T
    return rotated[:, :1] * e1 + rotated[:, 1:] * e2


def layout_middle(target: Target, direction: np.ndarray) -> np.ndarray:
    """Centre of a layout's active zones: on the axis through the target's centre, halfway along the
    axial extent of tumour + margin."""
    axial = (target.margin_points - target.centre) @ direction
    return target.centre + direction * 0.5 * (axial.min() + axial.max())


def candidate_tips(
    target: Target, direction: np.ndarray, offsets: np.ndarray, angle: float, probe_id: str
) -> np.ndarray:
    """Tips of a parallel layout centred on the target, its active zones centred on the target's axial extent."""
    probe = get_probe(probe_id)
    active_centres = layout_middle(target, direction) + layout_in_plane(direction, offsets, angle)
    return active_centres + direction * (probe.tip_offset_mm + probe.active_length_mm / 2)


def converging_layout(
    target: Target,
    path_map: PathMap,
    direction: np.ndarray,
    offsets: np.ndarray,
    angle: float,
    probe_id: str,
    entry_scale: float,
    max_path_mm: float,
):
    """Tips and insertion directions of a converging layout, and its skin entry point (the hub).

    The active zones are centred where a parallel layout along `direction` would centre them; the hub
    is where the layout's central axis leaves the skin, and each probe's straight path runs from the hub
    plus its layout offset shrunk by `entry_scale` (< 1) to the centre of its active zone, so the probes
    diverge from a small entry region towards their tips. None when the central axis has no skin entry.
    """
    probe = get_probe(probe_id)
    middle = layout_middle(target, direction)
    hub = path_map.skin_entry(middle, -direction, max_path_mm)
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
):
    """The probe axes a layout may take under `settings.paths`: ``(tips, directions, hub)`` with one
    direction and no hub for parallel probes, or one direction per probe and the skin entry point for
    converging probes (one per entry spacing in `CONVERGING_ENTRY_SPACING_MM` narrower than the layout)."""
    if settings.paths == "parallel" or len(offsets) == 1:
        yield candidate_tips(target, direction, offsets, angle, probe_id), direction, None
        return
    for entry_spacing in CONVERGING_ENTRY_SPACING_MM:
        if entry_spacing < spacing_mm:
            layout = converging_layout(
                target, path_map, direction, offsets, angle, probe_id, entry_spacing / spacing_mm, settings.max_path_mm
            )
            if layout is not None:
                yield layout


def search_candidates(
    target: Target,
    path_map: PathMap,
    settings: PlanSettings,
    directions: list[np.ndarray],
    min_probes: int = 1,
    progress=None,
) -> list[Candidate]:
    """Every feasible layout of the smallest probe count (from `min_probes`) whose estimate meets the
    target, cheapest first; empty when no count up to the maximum does."""
    found: list[Candidate] = []
    angles = np.radians([0.0, 45.0, 90.0, 135.0])
    for count in range(min_probes, settings.max_probes + 1):
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
                        entries = probe_paths(path_map, tips, axes, probe.radius_mm, settings.max_path_mm)
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
                    if covered < settings.coverage_target_pct:
                        continue
                    frozen = float(np.sum(estimate(chart, tips, axes, target.healthy_points) <= 0.0))
                    critical_ok = True
                    if len(target.critical_points):
                        critical_ok = bool(
                            np.all(
                                estimate(chart, tips, axes, target.critical_points) > settings.critical_temperature_c
                            )
                        )
                    found.append(Candidate(probes, minutes, spacing, covered, frozen * target.voxel_ml, critical_ok))
            if progress is not None:
                progress()
        if found:
            break
    found.sort(key=lambda c: c.cost)
    return found


def escalations(
    chosen: Candidate, target: Target, path_map: PathMap, settings: PlanSettings, directions: list[np.ndarray]
) -> list[Candidate]:
    """Plans to try when a full simulation falls short: the same layout frozen longer, then layouts with
    one more probe (cheapest first)."""
    options = []
    longer = [m for m in settings.freeze_minutes if m > chosen.freeze_minutes]
    if longer:
        options.append(replace(chosen, freeze_minutes=min(longer)))
    count = len(chosen.probes) + 1
    if count <= settings.max_probes:
        bigger = search_candidates(target, path_map, replace(settings, max_probes=count), directions, min_probes=count)
        options += bigger[:2]
    return options
