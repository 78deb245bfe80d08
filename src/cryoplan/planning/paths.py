"""Probe paths: insertion directions from the skin, where a path enters the body, and how far it stays from
every structure it must avoid.

A path runs straight from a skin entry to the probe's tip. It must start at the skin with air outside it,
inside the image (a skin the field of view leaves out cannot be checked), be no longer than the probe's
working length, stay within the entry window of the patient's position, and keep from every obstacle the
clearance of that structure (tissue between the probe's surface and the structure). Distances are measured
to the voxel centres of each structure's mask with the image's true spacing (Euclidean distance transform;
Maurer et al., IEEE Trans Pattern Anal Mach Intell 2003;25:265–270), precomputed once per case; a path's
clearance is the smallest over its samples of the exact distance from the sample to the nearest voxel centre
of each obstacle. Lower and upper bounds from the distance transform at the 8 voxel centres around each sample
(a distance changes no faster than the point moves) leave only the samples that can hold the smallest value,
or break the clearance, to be measured exactly, by a k-d tree of the obstacle's boundary voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from scipy import ndimage
from scipy.spatial import cKDTree

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy
from cryoplan.planning.settings import POSITIONS, PlanSettings
from cryoplan.thermal import ProbeType

# Samples along a path, mm.
PATH_STEP_MM = 0.5
# A skin entry needs this much air outside it, inside the image, mm.
AIR_BEYOND_MM = 3.0


class NoSafePath(InputError):
    """A lesion no path reaches safely: the message names the lesion and the constraint that blocked it."""

    def __init__(self, field: str, reason: str):
        super().__init__(field, "a safe probe path", reason)
        self.reason = reason
        self.args = (f"{field}: {reason}",)

    def __str__(self) -> str:
        return str(self.args[0])


def fibonacci_directions(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (Fibonacci lattice; González, Math Geosci 2010)."""
    index = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * index / count)
    azimuth = np.pi * (1 + 5**0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


@njit(cache=True)
def _slack_bounds(index: np.ndarray, slack: np.ndarray, linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the slack at continuous voxel indices `index` (n, 3) from its values at the 8
    voxel centres q around each: the largest slack(q) − |p − q| and the smallest slack(q) + |p − q| (the slack,
    a distance less a constant, changes no faster than the point moves). Corners beyond the image are clipped
    to its edge, which loosens the bounds there but keeps them bounds. `linear` maps index steps to mm."""
    n0, n1, n2 = slack.shape
    count = index.shape[0]
    lower = np.full(count, -np.inf)
    upper = np.full(count, np.inf)
    for m in range(count):
        base0, base1, base2 = np.floor(index[m, 0]), np.floor(index[m, 1]), np.floor(index[m, 2])
        for corner in range(8):
            q0 = min(max(int(base0) + (corner >> 2) % 2, 0), n0 - 1)
            q1 = min(max(int(base1) + (corner >> 1) % 2, 0), n1 - 1)
            q2 = min(max(int(base2) + corner % 2, 0), n2 - 1)
            d0, d1, d2 = q0 - index[m, 0], q1 - index[m, 1], q2 - index[m, 2]
            x = linear[0, 0] * d0 + linear[0, 1] * d1 + linear[0, 2] * d2
            y = linear[1, 0] * d0 + linear[1, 1] * d1 + linear[1, 2] * d2
            z = linear[2, 0] * d0 + linear[2, 1] * d1 + linear[2, 2] * d2
            gap = np.sqrt(x * x + y * y + z * z)
            value = float(slack[q0, q1, q2])
            lower[m] = max(lower[m], value - gap)
            upper[m] = min(upper[m], value + gap)
    return lower, upper


@dataclass
class PathMap:
    """What the path check samples, precomputed once per case on the image grid.

    Attributes
    ----------
    grid : Volume
        The image's geometry.
    body : numpy.ndarray of bool
        The patient's outline, internal cavities filled.
    groups : list of (float, numpy.ndarray, numpy.ndarray)
        Per distinct clearance value: the value, the obstacle mask of that clearance, and the flat indices
        of its boundary voxels.
    slack_mm : numpy.ndarray of float32
        Per voxel centre, the smallest over the groups of (distance − clearance).
    label : numpy.ndarray of int16
        Index into `obstacle_names` of each obstacle voxel (−1 elsewhere).
    obstacle_names : list of str
    clearances_mm : dict
        Clearance of each obstacle, mm.
    obstacles : dict
        Mask of each obstacle.
    """

    grid: Volume
    body: np.ndarray
    groups: list[tuple[float, np.ndarray, np.ndarray]]
    slack_mm: np.ndarray
    label: np.ndarray
    obstacle_names: list[str]
    clearances_mm: dict[str, float]
    obstacles: dict[str, np.ndarray] = field(default_factory=dict)
    _trees: dict[float, cKDTree] = field(default_factory=dict, repr=False)
    _checked: dict[tuple[bytes, bytes, float, float], np.ndarray | None] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, anatomy: PlanningAnatomy, settings: PlanSettings) -> PathMap:
        """Distance maps to the anatomy's obstacles (`PlanningAnatomy.obstacles`), one per clearance value."""
        obstacles = {
            name: mask for name, mask in anatomy.obstacles(settings.min_vessel_calibre_mm).items() if mask.any()
        }
        clearances = settings.clearances
        names = list(obstacles)
        label = np.full(anatomy.grid.shape, -1, dtype=np.int16)
        for number, name in enumerate(names):
            label[obstacles[name]] = number
        groups = []
        slack = np.full(anatomy.grid.shape, np.inf, dtype=np.float32)
        for value in sorted({clearances[name] for name in names}):
            group = np.zeros(anatomy.grid.shape, dtype=bool)
            for name in names:
                if clearances[name] == value:
                    group |= obstacles[name]
            distance = ndimage.distance_transform_edt(~group, sampling=anatomy.grid.spacing_mm)
            np.minimum(slack, distance - value, out=slack)
            boundary = np.flatnonzero(group & ~ndimage.binary_erosion(group))
            groups.append((value, group, boundary))
        return cls(
            anatomy.grid, anatomy.body, groups, slack, label, names, {n: clearances[n] for n in names}, obstacles
        )

    def __post_init__(self) -> None:
        # Inverted once: the path search maps points to voxel indices tens of thousands of times.
        self._lps_to_index = np.linalg.inv(self.grid.affine)[:3]

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of LPS points (n, 3)."""
        index: np.ndarray = (
            np.asarray(points, dtype=np.float64) @ self._lps_to_index[:, :3].T + self._lps_to_index[:, 3]
        )
        return index

    def _inside(self, index: np.ndarray) -> np.ndarray:
        inside: np.ndarray = np.all((index >= 0) & (index <= np.asarray(self.grid.shape) - 1), axis=-1)
        return inside

    def in_body(self, points: np.ndarray) -> np.ndarray:
        """1 inside the body, 0 outside it, −1 beyond the image (nearest voxel)."""
        index = np.rint(self.index_of(points)).astype(np.int64)
        inside = self._inside(index)
        values = np.full(len(points), -1, dtype=np.int8)
        values[inside] = self.body[tuple(index[inside].T)]
        return values

    def slack_bounds(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the slack at each point from the distance transform at the 8 voxel centres
        around it (`_slack_bounds`)."""
        return _slack_bounds(self.index_of(points), self.slack_mm, self.grid.affine[:3, :3])

    def lower_slack(self, points: np.ndarray) -> np.ndarray:
        """A lower bound of the slack at each point (`slack_bounds`)."""
        return self.slack_bounds(points)[0]

    def exact_slack(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slack at each point from the distance to the nearest voxel centre of each obstacle group (a
        k-d tree of its boundary voxels; a point whose own voxel is an obstacle is that voxel's distance
        away), and the flat index of the obstacle voxel that sets it (−1 without obstacles)."""
        slack = np.full(len(points), np.inf)
        which = np.full(len(points), -1, dtype=np.int64)
        index = np.rint(self.index_of(points)).astype(np.int64)
        inside = self._inside(index)
        own = np.full(len(points), -1, dtype=np.int64)
        own[inside] = np.ravel_multi_index(tuple(index[inside].T), self.grid.shape)
        for value, group, boundary in self.groups:
            tree = self._trees.get(value)
            if tree is None:
                centres = self.grid.index_to_lps(np.stack(np.unravel_index(boundary, group.shape), axis=1))
                tree = self._trees[value] = cKDTree(centres)
            distance, nearest = tree.query(points)
            feature = boundary[nearest]
            hit = np.zeros(len(points), dtype=bool)
            hit[inside] = group.ravel()[own[inside]]
            # Inside the obstacle, the nearest voxel centre is the point's own voxel (maybe not on its boundary).
            distance[hit] = np.linalg.norm(points[hit] - self.grid.index_to_lps(index[hit]), axis=1)
            feature[hit] = own[hit]
            better = distance - value < slack
            slack[better] = distance[better] - value
            which[better] = feature[better]
        return slack, which

    def trace(
        self, tip: np.ndarray, outward: np.ndarray, max_path_mm: float, step_mm: float = PATH_STEP_MM
    ) -> tuple[np.ndarray | None, str | None]:
        """Follow the line from `tip` along `outward` to the skin: ``(entry, None)``, or ``(None, reason)``
        with reason "image" (the body reaches the image's edge first: the skin is not seen), "length" (no
        skin within `max_path_mm`), "air" (no air beyond the skin inside the image) or "tip" (the tip lies
        outside the body)."""
        distances = np.arange(0.0, max_path_mm + AIR_BEYOND_MM + step_mm, step_mm)
        points = tip + distances[:, None] * outward
        body = self.in_body(points)
        if body[0] != 1:
            return None, "tip"
        leaving = np.flatnonzero(body != 1)
        if leaving.size == 0:
            return None, "length"
        first = leaving[0]
        if body[first] < 0:
            return None, "image"
        if distances[first] > max_path_mm:
            return None, "length"
        beyond = body[first : first + int(round(AIR_BEYOND_MM / step_mm)) + 1]
        if beyond.size < int(round(AIR_BEYOND_MM / step_mm)) + 1 or np.any(beyond != 0):
            return None, "air"
        return points[first], None

    def skin_entry(
        self, tip: np.ndarray, outward: np.ndarray, max_path_mm: float, step_mm: float = PATH_STEP_MM
    ) -> np.ndarray | None:
        """Where the line from `tip` along `outward` leaves the body at the skin (None when it does not)."""
        return self.trace(tip, outward, max_path_mm, step_mm)[0]

    def path_points(self, tip: np.ndarray, entry: np.ndarray, step_mm: float = PATH_STEP_MM) -> np.ndarray:
        length = float(np.linalg.norm(entry - tip))
        samples = np.linspace(0.0, 1.0, max(int(math.ceil(length / step_mm)) + 1, 2))
        points: np.ndarray = tip + samples[:, None] * (entry - tip)
        return points

    def path_clearance_mm(
        self, tip: np.ndarray, entry: np.ndarray, need: float | None = None, step_mm: float = PATH_STEP_MM
    ) -> float:
        """How far the straight path (tip to skin entry) stays beyond every obstacle's clearance (the
        probe's radius must fit in it): the smallest exact slack over samples `step_mm` apart, less half a
        step for the path between them. With `need`, a path whose every sample's lower bound clears it is not
        measured exactly: the value returned is then at least `need` (it may exceed the exact one), and exact
        whenever it is below `need`.

        Only the samples that can hold the smallest slack are measured exactly: those whose lower bound lies
        below every sample's upper bound (`slack_bounds`), and, with `need`, below `need` too."""
        points = self.path_points(tip, entry, step_mm)
        half = float(np.linalg.norm(entry - tip)) / max(len(points) - 1, 1) / 2
        if not self.groups:
            return math.inf
        lower, upper = self.slack_bounds(points)
        candidate = lower <= upper.min()
        if need is not None:
            candidate &= lower - half < need
        if not candidate.any():
            return float(lower.min()) - half
        exact = float(self.exact_slack(points[candidate])[0].min())
        rest = float(lower[~candidate].min()) if (~candidate).any() else math.inf
        return min(exact, rest) - half

    def checked_entry(
        self, tip: np.ndarray, direction: np.ndarray, probe_radius_mm: float, max_path_mm: float
    ) -> np.ndarray | None:
        """The skin entry of a probe ending at `tip` and inserted along `direction`, None when the path has
        none within `max_path_mm` or breaks a structure's clearance beyond the probe's radius. Remembered:
        the layout search asks again for two thirds of its paths (90,765 checks of 32,302 paths planning
        the 30 mm lesion of benchmarks/planning.py)."""
        tip = np.asarray(tip, dtype=np.float64)
        direction = np.asarray(direction, dtype=np.float64)
        key = (tip.tobytes(), direction.tobytes(), float(probe_radius_mm), float(max_path_mm))
        if key not in self._checked:
            entry = self.skin_entry(tip, -direction, max_path_mm)
            if entry is not None and self.path_clearance_mm(tip, entry, need=probe_radius_mm) < probe_radius_mm:
                entry = None
            if entry is not None:
                entry = entry.copy()  # not a view keeping the traced line alive
                entry.flags.writeable = False
            self._checked[key] = entry
        return self._checked[key]

    def blocking(self, tip: np.ndarray, entry: np.ndarray) -> str | None:
        """The obstacle whose clearance the path comes closest to breaking (None without obstacles)."""
        slack, which = self.exact_slack(self.path_points(tip, entry))
        feature = int(which[int(np.argmin(slack))])
        if feature < 0:
            return None
        return self.obstacle_names[int(self.label.ravel()[feature])]


def probe_paths(
    path_map: PathMap, tips: np.ndarray, directions: np.ndarray, probe_radius_mm: float, max_path_mm: float
) -> np.ndarray | None:
    """Skin entries of probes ending at `tips` and inserted along `directions` (one direction for
    parallel probes, or one per probe); None if any path breaks a structure's clearance beyond the
    probe's radius, or has no checked skin entry within `max_path_mm`."""
    entries = []
    for tip, direction in zip(tips, np.broadcast_to(directions, np.shape(tips))):
        entry = path_map.checked_entry(tip, direction, probe_radius_mm, max_path_mm)
        if entry is None:
            return None
        entries.append(entry)
    return np.array(entries)


def window(outward: np.ndarray, settings: PlanSettings, position: str | None = None) -> np.ndarray:
    """Whether outward directions (tumour → skin) lie in the entry window of the patient's position: not
    towards the table by more than `entry_max_posterior` (as a direction cosine), craniocaudally at most
    `entry_max_craniocaudal`."""
    position = position or settings.position
    table = {"supine": (1, 1.0), "prone": (1, -1.0), "left_decubitus": (0, 1.0)}[position]
    towards_table = table[1] * outward[..., table[0]]
    allowed: np.ndarray = (towards_table <= settings.entry_max_posterior) & (
        np.abs(outward[..., 2]) <= settings.entry_max_craniocaudal
    )
    return allowed


def entry_directions(settings: PlanSettings, count: int = 800, position: str | None = None) -> np.ndarray:
    """Insertion directions (skin → tip) allowed by the entry window of the patient's position."""
    outward = fibonacci_directions(count)
    directions: np.ndarray = -outward[window(outward, settings, position)]
    return directions


def max_path_mm(settings: PlanSettings, probe: ProbeType) -> float:
    """The longest path a probe type may take: the settings' limit or the probe's working length."""
    return float(min(settings.max_path_mm, probe.working_length_mm))


def ranked_directions(
    path_map: PathMap,
    centre: np.ndarray,
    settings: PlanSettings,
    probe_radius_mm: float,
    depth_mm: float = 0.0,
    keep: int = 8,
    reach_mm: float | None = None,
    entry: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Feasible insertion directions to `centre`, spread at least 12° apart.

    Directions whose path stays clear down to `depth_mm` beyond the centre (where a probe's tip lies
    when its active zone is centred on the target) come first, each group shortest path first; the
    clearance also counts in the score. With a given `entry`, the one direction from it to the centre.
    """
    reach = settings.max_path_mm if reach_mm is None else reach_mm
    if entry is not None:
        direction = (centre - entry) / np.linalg.norm(centre - entry)
        return [direction]
    scored = []
    for direction in entry_directions(settings):
        found = path_map.skin_entry(centre, -direction, reach)
        if found is None:
            continue
        clearance = path_map.path_clearance_mm(centre, found, need=probe_radius_mm)
        if clearance < probe_radius_mm:
            continue
        deep = (
            path_map.path_clearance_mm(centre + depth_mm * direction, centre, need=probe_radius_mm) >= probe_radius_mm
        )
        scored.append((not deep, float(np.linalg.norm(found - centre)) - 0.5 * min(clearance, 20.0), direction))
    scored.sort(key=lambda item: item[:2])
    chosen: list[np.ndarray] = []
    for _, _, direction in scored:
        if all(np.dot(direction, other) < math.cos(math.radians(12)) for other in chosen):
            chosen.append(direction)
        if len(chosen) == keep:
            break
    return chosen


def why_no_path(
    path_map: PathMap,
    centre: np.ndarray,
    settings: PlanSettings,
    probe_radius_mm: float,
    reach_mm: float,
    count: int = 800,
) -> str:
    """One line saying which constraint blocks every path to `centre` in the settings' position, and which
    other position (if any) reaches it."""
    outward = fibonacci_directions(count)
    reasons_found = []
    for direction in outward:
        entry, reason = path_map.trace(centre, direction, reach_mm)
        if entry is not None:
            if path_map.path_clearance_mm(centre, entry, need=probe_radius_mm) >= probe_radius_mm:
                reason = "ok"
            else:
                reason = f"structure:{path_map.blocking(centre, entry)}"
        reasons_found.append(reason)
    outcome = np.array(reasons_found)
    here = window(outward, settings)
    reasons = outcome[here]
    structures = [r.split(":", 1)[1] for r in reasons if r.startswith("structure:")]
    position = settings.position.replace("_", " ")
    if structures:
        name = max(set(structures), key=structures.count)
        clearance = path_map.clearances_mm.get(name, 0.0)
        line = f"no path avoids the {name.replace('_', ' ')} within {clearance:g} mm with the patient {position}"
    elif np.any(reasons == "image"):
        line = (
            f"no path with the patient {position} has its skin entry inside the image (the field of view cuts "
            "the body); give the entry point (--entry or imaging.entries)"
        )
    elif np.any(reasons == "air"):
        line = f"no path with the patient {position} reaches the skin with air outside it inside the image"
    else:
        line = (
            f"no path with the patient {position} reaches the skin within {reach_mm:g} mm (the probe's working length)"
        )
    others = [p for p in POSITIONS if p != settings.position and np.any(outcome[window(outward, settings, p)] == "ok")]
    if others:
        line += f"; a {others[0].replace('_', ' ')} approach reaches it"
    else:
        line += "; no other position reaches it either"
    return line


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def path_angles_deg(direction: np.ndarray) -> dict[str, float]:
    """Angles of an insertion direction (skin → tip): craniocaudal, out of the axial plane (positive
    towards the head), and mediolateral, within the axial plane from the anteroposterior axis (positive
    towards the patient's left)."""
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    craniocaudal = math.degrees(math.asin(float(np.clip(d[2], -1.0, 1.0))))
    mediolateral = math.degrees(math.atan2(float(d[0]), abs(float(d[1]))))
    return {"craniocaudal": round(craniocaudal, 1), "mediolateral": round(mediolateral, 1)}


def approach(path_map: PathMap, anatomy: PlanningAnatomy, tip: np.ndarray, entry: np.ndarray) -> tuple[str, str | None]:
    """The approach of a path and, for an intercostal one, the space it passes.

    Intercostal: ribs lie both above and below the path within 25 mm of it, in its outer part (between the
    skin and the liver); the space is named by the rib above it where ribs are numbered. Otherwise
    subcostal when the entry faces anteriorly (below the costal margin), else posterior-lateral.
    """
    model = anatomy.body_model
    outward = (entry - tip) / np.linalg.norm(entry - tip)
    ribs = None if model is None else model.structures.get("rib")
    if ribs is None and model is not None:
        ribs = model.bone
    if model is not None and ribs is not None and ribs.any():
        points = path_map.path_points(tip, entry, 1.0)
        wall = points[~anatomy_liver_at(anatomy, points)]
        centres = anatomy.grid.index_to_lps(np.argwhere(ribs))
        if len(wall):
            gap, which = cKDTree(wall).query(centres)
            near = gap <= 25.0
            close = centres[near]
            if len(close):
                closest = wall[which[near]]
                above = close[:, 2] > closest[:, 2] + 1e-6
                below = close[:, 2] < closest[:, 2] - 1e-6
                if above.any() and below.any():
                    space = None
                    if model.rib_numbers is not None:
                        index = np.argwhere(ribs)[near][above]
                        numbers = model.rib_numbers[tuple(index.T)]
                        numbers = numbers[numbers != 0]
                        if numbers.size:
                            gaps = close[above][numbers != 0, 2] - closest[above][numbers != 0, 2]
                            rib = int(numbers[int(np.argmin(gaps))])
                            space = f"{'right' if rib > 0 else 'left'} {_ordinal(abs(rib))} intercostal space"
                    return "intercostal", space
    if outward[1] <= 0.3:
        return "subcostal", None
    return "posterior_lateral", None


def anatomy_liver_at(anatomy: PlanningAnatomy, points: np.ndarray) -> np.ndarray:
    """Whether points lie in the liver (nearest voxel; False beyond the image)."""
    index = np.rint(anatomy.grid.lps_to_index(points)).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(anatomy.grid.shape)), axis=1)
    found = np.zeros(len(points), dtype=bool)
    found[inside] = anatomy.liver[tuple(index[inside].T)]
    return found


def describe_path(
    path_map: PathMap, anatomy: PlanningAnatomy, tip: np.ndarray, entry: np.ndarray, probe_radius_mm: float
) -> dict[str, Any]:
    """What the report says about one probe's path: its length, angles, approach, the tissues it crosses
    in order from the skin (with their lengths) and the nearest distance from its axis to each obstacle
    within 50 mm (voxel centres, true spacing) with that obstacle's clearance."""
    points = path_map.path_points(entry, tip, PATH_STEP_MM)
    length = float(np.linalg.norm(tip - entry))
    step = length / max(len(points) - 1, 1)
    crossed: list[dict[str, Any]] = []
    if anatomy.body_model is not None:
        names = anatomy.body_model.tissue_names(points)
        while names and names[0] == "air":  # the entry is the first sample outside the body
            names = names[1:]
        for name in names:
            if crossed and crossed[-1]["structure"] == name:
                crossed[-1]["length_mm"] += step
            else:
                crossed.append({"structure": name, "length_mm": step})
        for item in crossed:
            item["length_mm"] = round(item["length_mm"], 1)
    nearest: list[dict[str, Any]] = []
    for name, mask in path_map.obstacles.items():
        centres = anatomy.grid.index_to_lps(np.argwhere(mask))
        box = np.all((centres >= points.min(axis=0) - 50.0) & (centres <= points.max(axis=0) + 50.0), axis=1)
        if not box.any():
            continue
        distance = float(cKDTree(points).query(centres[box])[0].min())
        if distance <= 50.0:
            nearest.append(
                {
                    "structure": name,
                    "distance_mm": round(distance, 1),
                    "clearance_mm": path_map.clearances_mm[name],
                    "probe_radius_mm": round(probe_radius_mm, 3),
                }
            )
    nearest.sort(key=lambda item: item["distance_mm"])
    kind, space = approach(path_map, anatomy, tip, entry)
    return {
        "length_mm": round(length, 1),
        "angles_deg": path_angles_deg(tip - entry),
        "approach": kind,
        "intercostal_space": space,
        "crossed": crossed,
        "nearest": nearest,
    }
