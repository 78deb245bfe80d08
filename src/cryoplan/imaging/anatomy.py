"""Labels to anatomy, and the measurements planning needs: lesions (connected components of the tumour
label) with their size, position, Couinaud segment, distances to bile ducts and vessels and heat-sink flag.

Every class of a TotalSegmentator label map becomes a named structure (`STRUCTURES`; the class table in
`cryoplan.imaging.totalsegmentator`), ribs with their numbers; masks given with a label map replace its
structures. Lesions below a minimum diameter are listed but flagged not to be planned.

All lengths are millimetres in the patient frame, computed with the true voxel spacing: diameters from the
convex hull of a lesion's voxels, surface distances from nearest-neighbour queries between boundary voxel
centres (k-d tree), vessel calibres from Euclidean distance transforms sampled at the anisotropic spacing
(Maurer et al., IEEE TPAMI 2003, as implemented by `scipy.ndimage.distance_transform_edt`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree
from scipy.spatial.distance import cdist

from cryoplan.errors import InputError
from cryoplan.imaging.io import read_labels, read_volume, segment_label_map
from cryoplan.imaging.totalsegmentator import TASKS, preset_values, rib_number
from cryoplan.imaging.volume import Volume

#: Structure names cryoplan knows; every label, preset and mask maps onto these. ``bone`` is every bone of
#: the skeleton; ``rib``, ``sternum`` and ``vertebra`` are named parts of it (``costal_cartilage`` is not
#: bone). ``other_vessel`` gathers the vessels outside the liver other than the aorta, IVC and portal vein.
STRUCTURES = (
    "liver",
    "tumour",
    "hepatic_vein",
    "portal_vein",
    "ivc",
    "aorta",
    "other_vessel",
    "bile_duct",
    "gallbladder",
    "lung",
    "trachea",
    "heart",
    "oesophagus",
    "stomach",
    "duodenum",
    "small_bowel",
    "colon",
    "pancreas",
    "kidney",
    "adrenal",
    "spleen",
    "bladder",
    "prostate",
    "thyroid",
    "brain",
    "bone",
    "rib",
    "costal_cartilage",
    "sternum",
    "vertebra",
    "intervertebral_disc",
    "spinal_cord",
    "muscle",
    "fat",
)
#: The vessel classes whose distance and calibre matter for the heat (cold) sink.
VESSELS = ("hepatic_vein", "portal_vein", "ivc", "aorta")
#: Named bones, inside ``bone``.
SKELETON_PARTS = ("rib", "sternum", "vertebra")

#: Heat-sink rule: a vessel of at least this calibre within this distance of the lesion surface
#: (large peritumoral vessels ≥ 3 mm, Lu et al., J Vasc Interv Radiol 2003;14:1267).
HEAT_SINK_CALIBRE_MM = 3.0
HEAT_SINK_DISTANCE_MM = 10.0
#: Lesions whose maximal diameter is below this are listed but not planned, mm (default; settable).
MIN_LESION_DIAMETER_MM = 5.0


def _total_preset(task: dict[int, str]) -> dict[str, tuple[int, ...]]:
    """Every class of a TotalSegmentator task as a structure; ``bone`` also holds the named bones."""
    values = preset_values(task)
    skeleton = [v for name in ("bone", *SKELETON_PARTS) for v in values.get(name, ())]
    return {**values, "bone": tuple(sorted(skeleton))}


# TotalSegmentator v2 label numbers (Wasserthal et al., Radiol Artif Intell 2023), tasks `total` (CT) and
# `total_mr` (MR), every class mapped to a structure.
PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "liver_tumour": {"liver": (1,), "tumour": (2,)},
    **{preset: _total_preset(task) for preset, task in TASKS.items()},
}
#: Presets whose every structure must be present (the others label whatever the field of view holds).
_COMPLETE_PRESETS = {"liver_tumour"}


@dataclass
class Anatomy:
    """Binary masks of named structures on one voxel grid.

    Parameters
    ----------
    grid : Volume
        The geometry (its array may be the image itself).
    masks : dict of str to numpy.ndarray
        Structure name (from `STRUCTURES`) → boolean array of `grid`'s shape.
    couinaud : numpy.ndarray, optional
        Couinaud segment number (1–8) per voxel, 0 outside the segment map.
    labelled : frozenset of str, optional
        The structures the segmentation labels wherever they are (a full organ label map labels every
        organ it knows; an absent one is not in the image). Default: the structures of `masks`.
    rib_numbers : numpy.ndarray, optional
        Signed rib number per voxel where ribs are labelled one by one: +1…+12 right, −1…−12 left, 0 elsewhere.
    """

    grid: Volume
    masks: dict[str, np.ndarray]
    couinaud: np.ndarray | None = None
    labelled: frozenset[str] | None = None
    rib_numbers: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name, mask in self.masks.items():
            if name not in STRUCTURES:
                raise InputError(f"structures.{name}", f"a structure name, one of {', '.join(STRUCTURES)}", name)
            if np.shape(mask) != self.grid.shape:
                raise InputError(
                    f"masks.{name}", f"a mask of the image's shape {list(self.grid.shape)}", list(np.shape(mask))
                )
        self.masks = {name: np.asarray(mask, dtype=bool) for name, mask in self.masks.items()}
        if self.couinaud is not None and np.shape(self.couinaud) != self.grid.shape:
            raise InputError(
                "segments", f"a segment map of the image's shape {list(self.grid.shape)}", list(np.shape(self.couinaud))
            )
        self.labelled = frozenset(self.masks) if self.labelled is None else frozenset(self.labelled)
        if self.rib_numbers is not None and np.shape(self.rib_numbers) != self.grid.shape:
            raise InputError("labels.rib", f"a rib map of the image's shape {list(self.grid.shape)}")
        gram = self.grid.direction.T @ self.grid.direction
        if not np.allclose(gram, np.eye(3), atol=1e-3):
            raise InputError("image", "an orthogonal voxel grid for distance measurements", "sheared axes")

    def volume_ml(self, name: str) -> float:
        """Volume of a structure (voxel count × voxel volume), ml."""
        return float(np.count_nonzero(self.masks[name]) * self.grid.voxel_volume_ml)


#: A user's label dictionary: structure name → label value or values.
LabelMap = Mapping[str, int | Sequence[int]]


def _parse_label_values(mapping: LabelMap) -> dict[str, tuple[int, ...]]:
    """Normalise a user's label dictionary (name → value or values), checking names and values."""
    parsed = {}
    for name, values in mapping.items():
        if name not in STRUCTURES:
            raise InputError(f"labels.{name}", f"a structure name, one of {', '.join(STRUCTURES)}", name)
        values = (values,) if isinstance(values, (int, np.integer)) else tuple(values)
        if not values or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0 for v in values):
            raise InputError(f"labels.{name}", "positive whole label values", values)
        parsed[name] = tuple(int(v) for v in values)
    return parsed


def anatomy_from_labels(
    labels: Volume,
    preset: str | None = None,
    mapping: LabelMap | None = None,
    couinaud: Volume | None = None,
) -> Anatomy:
    """Anatomy from a label map, by a preset or a user's label dictionary (exactly one of them).

    Parameters
    ----------
    labels : Volume
        Integer label map.
    preset : str, optional
        One of `PRESETS`: ``liver_tumour`` (1 liver, 2 tumour), ``totalsegmentator`` (task ``total``, CT),
        ``totalsegmentator_mr`` (task ``total_mr``).
    mapping : dict, optional
        Structure name → label value (or list of values).
    couinaud : Volume, optional
        Couinaud segment map (values 1–8) on the same grid.

    Raises
    ------
    InputError
        Unknown preset or structure name; a structure the user named (or that ``liver_tumour`` requires)
        has no voxel, such as an empty tumour label.
    """
    if preset is not None and mapping is None:
        if preset not in PRESETS:
            raise InputError("label_preset", f"one of {', '.join(PRESETS)}", preset)
        values, required = PRESETS[preset], preset in _COMPLETE_PRESETS
    elif mapping is not None and preset is None:
        values, required = _parse_label_values(mapping), True
    else:
        raise InputError(
            "labels", "exactly one of a label preset or a label dictionary", "both" if preset else "neither"
        )
    masks = {}
    for name, numbers in values.items():
        mask = _label_mask(labels.array, numbers)
        if required and not mask.any():
            raise InputError(
                f"labels.{name}", f"voxels with label {' or '.join(map(str, numbers))}", "none in the label map"
            )
        if mask.any():
            masks[name] = mask
    ribs = _rib_numbers(labels.array, TASKS[preset]) if preset in TASKS and "rib" in masks else None
    return Anatomy(labels, masks, None if couinaud is None else _couinaud_array(couinaud), frozenset(values), ribs)


def _rib_numbers(array: np.ndarray, task: dict[int, str]) -> np.ndarray:
    """Signed rib number per voxel from a label map whose classes number the ribs (0 elsewhere)."""
    table = np.zeros(max(int(array.max()), *task) + 1, dtype=np.int8)
    for value, name in task.items():
        table[value] = rib_number(name) or 0
    numbers: np.ndarray = table[array]
    return numbers


def _label_mask(array: np.ndarray, numbers: tuple[int, ...]) -> np.ndarray:
    """Voxels whose label is one of `numbers` (a lookup table: one pass however many numbers)."""
    mask: NDArray[np.bool_]
    if len(numbers) == 1:
        mask = array == numbers[0]
        return mask
    top = int(array.max()) if array.size else 0
    table = np.zeros(max(top, *numbers) + 1, dtype=bool)
    table[list(numbers)] = True
    mask = table[array]
    return mask


def anatomy_from_masks(masks: dict[str, Volume], grid: Volume, couinaud: Volume | None = None) -> Anatomy:
    """Anatomy from one binary mask per structure (non-zero = inside), all on `grid`."""
    arrays = {}
    for name, mask in masks.items():
        if name not in STRUCTURES:
            raise InputError(f"masks.{name}", f"a structure name, one of {', '.join(STRUCTURES)}", name)
        if not mask.same_grid(grid):
            raise InputError(f"masks.{name}", "a mask on the image grid", f"shape {list(mask.shape)}")
        arrays[name] = mask.array != 0
        if not arrays[name].any():
            raise InputError(f"masks.{name}", "a mask with at least one voxel", "empty")
    return Anatomy(grid, arrays, None if couinaud is None else _couinaud_array(couinaud))


def _couinaud_array(segments: Volume) -> np.ndarray:
    if segments.array.size and (segments.array.min() < 0 or segments.array.max() > 8):
        raise InputError("segments", "Couinaud segment numbers 1–8 (0 outside)", int(segments.array.max()))
    return np.asarray(segments.array, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class LesionMeasurement:
    """One lesion as measured on the images (the JSON contract of `cryoplan inspect`)."""

    id: str
    voxel_count: int
    volume_ml: float
    max_diameter_mm: float
    axial_diameter_mm: float
    centroid_lps_mm: tuple[float, float, float]
    couinaud_segment: int | None
    distance_to_bile_duct_mm: float | None
    distance_to_major_vessel_mm: float | None
    nearest_vessel: str | None
    distance_to_vessels_mm: dict[str, float] = field(default_factory=dict)
    heat_sink: bool = False
    heat_sink_vessel: str | None = None
    heat_sink_vessel_calibre_mm: float | None = None
    resolution_mm: float = 0.0
    below_min_size: bool = False

    def case_fields(self) -> dict[str, str | float | bool | None]:
        """The fields of a case file's lesion (`cryoplan.case.Lesion`) this measurement gives."""
        return {
            "id": self.id,
            "diameter_mm": self.max_diameter_mm,
            "distance_to_bile_duct_mm": self.distance_to_bile_duct_mm,
            "distance_to_major_vessel_mm": self.distance_to_major_vessel_mm,
            "resolution_mm": self.resolution_mm or None,
            "below_min_size": self.below_min_size,
        }

    def to_json(self) -> dict[str, object]:
        def mm(value: float | None) -> float | None:
            return None if value is None else round(float(value), 2)

        return {
            "id": self.id,
            "voxel_count": self.voxel_count,
            "volume_ml": round(self.volume_ml, 3),
            "max_diameter_mm": mm(self.max_diameter_mm),
            "axial_diameter_mm": mm(self.axial_diameter_mm),
            "centroid_lps_mm": [mm(v) for v in self.centroid_lps_mm],
            "couinaud_segment": self.couinaud_segment,
            "distance_to_bile_duct_mm": mm(self.distance_to_bile_duct_mm),
            "distance_to_major_vessel_mm": mm(self.distance_to_major_vessel_mm),
            "nearest_vessel": self.nearest_vessel,
            "distance_to_vessels_mm": {name: mm(d) for name, d in self.distance_to_vessels_mm.items()},
            "heat_sink": self.heat_sink,
            "heat_sink_vessel": self.heat_sink_vessel,
            "heat_sink_vessel_calibre_mm": mm(self.heat_sink_vessel_calibre_mm),
            "resolution_mm": mm(self.resolution_mm),
            "below_min_size": self.below_min_size,
        }


@dataclass(frozen=True)
class _Component:
    """One connected tumour component: its bounding box in the image and its mask within that box."""

    box: tuple[slice, ...]
    mask: np.ndarray

    @property
    def start(self) -> np.ndarray:
        return np.asarray([s.start for s in self.box])


def _components(anatomy: Anatomy, min_voxels: int) -> list[_Component]:
    if min_voxels < 1:
        raise InputError("min_voxels", "a whole number ≥ 1", min_voxels)
    tumour = anatomy.masks.get("tumour")
    region = None if tumour is None else _bounding_box(tumour)
    if tumour is None or region is None:
        return []
    labelled, _ = ndimage.label(tumour[region])  # within the tumours' bounding box only: far less work
    found = []
    for number, box in enumerate(ndimage.find_objects(labelled), start=1):
        mask = labelled[box] == number
        if np.count_nonzero(mask) >= min_voxels:
            image_box = tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, box))
            found.append(_Component(image_box, mask))
    # largest first; equal sizes keep the labelling's raster order of their first voxel (a stable sort)
    return sorted(found, key=lambda c: -np.count_nonzero(c.mask))


def lesion_components(anatomy: Anatomy, min_voxels: int = 1) -> list[np.ndarray]:
    """Lesions: face-connected components of the tumour mask with at least `min_voxels` voxels, largest
    first (the order of the ids L1, L2, … of `measure_lesions`), each as a mask of the whole image.

    Face connectivity (6 neighbours) keeps two lesions that touch only at an edge or corner apart.
    """
    masks = []
    for component in _components(anatomy, min_voxels):
        full = np.zeros(anatomy.grid.shape, dtype=bool)
        full[component.box] = component.mask
        masks.append(full)
    return masks


def measure_lesions(
    anatomy: Anatomy, min_voxels: int = 1, min_diameter_mm: float = MIN_LESION_DIAMETER_MM
) -> list[LesionMeasurement]:
    """Measure every lesion of `anatomy` (see `lesion_components`).

    Per lesion: volume (voxel count × voxel volume), maximal 3-D diameter, longest diameter within one
    axial slice (RECIST 1.1 style; Eisenhauer et al., Eur J Cancer 2009), centroid, Couinaud segment (the
    most frequent among its voxels), minimal surface-to-surface distance to the bile ducts and to each
    vessel class, and the heat-sink flag (a vessel ≥ 3 mm in calibre within 10 mm).

    Every length is measured between voxel centres, so it is known to within one voxel: ``resolution_mm``
    is the largest voxel edge. A one-voxel lesion measures 0 mm (smaller than one voxel). Lesions whose
    maximal diameter is below `min_diameter_mm` are listed with ``below_min_size`` set: not to be planned.
    """
    if not 0.0 <= min_diameter_mm <= 100.0:
        raise InputError("min_lesion_diameter_mm", "a diameter from 0 to 100 mm", min_diameter_mm)
    components = _components(anatomy, min_voxels)
    surfaces = {
        name: _Surface.of(anatomy.grid, anatomy.masks[name])
        for name in ("bile_duct", *VESSELS)
        if components and name in anatomy.masks
    }
    measured = [_measure_one(anatomy, component, surfaces, f"L{n}") for n, component in enumerate(components, 1)]
    resolution = float(np.max(anatomy.grid.spacing_mm))
    return [replace(m, resolution_mm=resolution, below_min_size=m.max_diameter_mm < min_diameter_mm) for m in measured]


def _measure_one(
    anatomy: Anatomy, lesion: _Component, surfaces: dict[str, _Surface], lesion_id: str
) -> LesionMeasurement:
    grid = anatomy.grid
    index = np.argwhere(lesion.mask) + lesion.start
    centroid = grid.index_to_lps(index.mean(axis=0))
    segment = None
    if anatomy.couinaud is not None:
        votes = np.bincount(anatomy.couinaud[lesion.box][lesion.mask], minlength=9)[1:]
        segment = int(np.argmax(votes)) + 1 if votes.any() else None
    boundary = _boundary_points(grid, lesion.mask, lesion.start)
    distances = {}
    for name, surface in surfaces.items():
        overlap = bool(anatomy.masks[name][lesion.box][lesion.mask].any())
        distances[name] = 0.0 if overlap else surface.distance_mm(grid, boundary)
    vessel_distances = {name: d for name in VESSELS if (d := distances.get(name)) is not None}
    nearest = min(vessel_distances, key=vessel_distances.__getitem__) if vessel_distances else None
    sink_vessel, sink_calibre = _heat_sink(anatomy, lesion)
    return LesionMeasurement(
        id=lesion_id,
        voxel_count=int(index.shape[0]),
        volume_ml=float(index.shape[0] * grid.voxel_volume_ml),
        max_diameter_mm=max_diameter_mm(grid, lesion.mask),
        axial_diameter_mm=axial_diameter_mm(grid, lesion.mask),
        centroid_lps_mm=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
        couinaud_segment=segment,
        distance_to_bile_duct_mm=distances.get("bile_duct"),
        distance_to_major_vessel_mm=vessel_distances[nearest] if nearest else None,
        nearest_vessel=nearest,
        distance_to_vessels_mm=vessel_distances,
        heat_sink=sink_vessel is not None,
        heat_sink_vessel=sink_vessel,
        heat_sink_vessel_calibre_mm=sink_calibre,
    )


def _chord_mm(grid: Volume, direction_lps: np.ndarray) -> float:
    """Length of the chord through a voxel's centre along a direction: min over axes of s_a / |u·e_a|."""
    u = direction_lps / np.linalg.norm(direction_lps)
    components = np.abs(grid.direction.T @ u)
    with np.errstate(divide="ignore"):
        return float(np.min(np.where(components > 1e-9, grid.spacing_mm / components, np.inf)))


def _farthest_pair(points_index: np.ndarray, grid: Volume) -> tuple[float, np.ndarray]:
    """Largest distance (mm) between voxel centres, and the LPS vector joining that pair.

    Candidates are the convex-hull vertices in index space (an affine map keeps hull vertices), so the
    pairwise search runs over hundreds of points rather than the whole lesion.
    """
    points = points_index.astype(np.float64)
    dims = np.linalg.matrix_rank(points - points.mean(axis=0)) if len(points) > 1 else 0
    if len(points) > dims + 1 and dims >= 2:
        try:
            basis = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][:dims]
            hull = ConvexHull((points - points.mean(axis=0)) @ basis.T)
            points = points[hull.vertices]
        except QhullError:
            pass
    lps = grid.index_to_lps(points)
    if len(lps) == 1:
        return 0.0, np.array([1.0, 0.0, 0.0])
    distances = cdist(lps, lps)
    a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return float(distances[a, b]), lps[b] - lps[a]


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box holding every voxel of `mask` (None when empty), from its projections on the axes."""
    box = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if present.size == 0:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with a face neighbour outside it (the array's edge counts as outside)."""
    boundary: NDArray[np.bool_] = mask & ~ndimage.binary_erosion(mask)
    return boundary


def _boundary_points(grid: Volume, mask: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """LPS centres (n, 3) of the boundary voxels of `mask`, whose index 0 lies at `start` of the image."""
    index = np.argwhere(_boundary(mask))
    return grid.index_to_lps(index if start is None else index + start)


def max_diameter_mm(grid: Volume, mask: np.ndarray) -> float:
    """Maximal 3-D diameter: the farthest pair of voxel centres of the lesion's boundary voxels.

    A lesion labelled as the voxels whose centres lie inside it has its outermost centres within a small
    fraction of a voxel of its surface, so the centre-to-centre length is the diameter within one voxel.
    Lengths depend only on the affine's linear part, so `mask` may be a crop of the image.
    """
    return _farthest_pair(np.argwhere(_boundary(mask)), grid)[0]


def axial_diameter_mm(grid: Volume, mask: np.ndarray) -> float:
    """Longest diameter within one axial slice (slices of the voxel axis closest to superior–inferior)."""
    axis = int(np.argmax(np.abs(grid.direction[2])))
    index = np.argwhere(mask)
    best = 0.0
    for position in np.unique(index[:, axis]):
        best = max(best, _farthest_pair(index[index[:, axis] == position], grid)[0])
    return best


@dataclass(frozen=True)
class _Surface:
    """The boundary voxel centres of a structure in a k-d tree, for nearest-surface queries."""

    points: np.ndarray
    tree: cKDTree | None

    @classmethod
    def of(cls, grid: Volume, mask: np.ndarray) -> _Surface:
        box = _bounding_box(mask)
        if box is None:
            return cls(np.empty((0, 3)), None)
        points = _boundary_points(grid, mask[box], np.asarray([s.start for s in box]))
        return cls(points, cKDTree(points))

    def distance_mm(self, grid: Volume, lesion_points: np.ndarray) -> float | None:
        """Gap between this surface and a lesion's (boundary voxel centres `lesion_points`); None if empty.

        The closest pair of voxel centres each lies between zero and one voxel inside its surface, so half
        the voxel chord along their direction is taken off their distance: unbiased, and within half a
        voxel diagonal for structures several voxels across.
        """
        if self.tree is None:
            return None
        distances, nearest = self.tree.query(lesion_points)
        best = int(np.argmin(distances))
        vector = self.points[nearest[best]] - lesion_points[best]
        return max(0.0, float(distances[best]) - _chord_mm(grid, vector) / 2)


def surface_distance_mm(grid: Volume, mask: np.ndarray, structure: np.ndarray) -> float | None:
    """Minimal surface-to-surface distance between two masks of one image, mm (0 when they overlap).

    The nearest pair of voxels of two disjoint masks are boundary voxels of both (a voxel with all face
    neighbours inside has a neighbour nearer to the other mask), so a k-d tree over the boundary voxel
    centres finds it exactly, at the true anisotropic spacing. Returns None when `structure` is empty.
    """
    if not structure.any():
        return None
    if (mask & structure).any():
        return 0.0
    return _Surface.of(grid, structure).distance_mm(grid, _boundary_points(grid, mask))


def _heat_sink(anatomy: Anatomy, lesion: _Component) -> tuple[str | None, float | None]:
    """The largest vessel within 10 mm of the lesion, if at least 3 mm in calibre: (class, calibre mm).

    For each vessel voxel w, e(w) is its distance to the nearest non-vessel voxel centre and d(w) its
    distance to the nearest lesion voxel centre (Euclidean distance transforms at the voxel spacing).
    The vessel's inscribed ball at w has radius about e - s/2 (s the mean voxel size) and lies d - e from
    the lesion surface; a calibre 2e - s ≥ 3 mm with d - e ≤ 10 mm is a heat sink (Lu et al., J Vasc
    Interv Radiol 2003). The transforms run on a box 30 mm larger than the lesion on every side, which
    holds every vessel up to 40 mm across whose wall is within 10 mm.
    """
    grid = anatomy.grid
    voxel = float(np.mean(grid.spacing_mm))
    pad = np.ceil((HEAT_SINK_DISTANCE_MM + 20.0) / grid.spacing_mm).astype(int)
    box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(lesion.box, pad, grid.shape))
    local = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
    offset = tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(lesion.box, box))
    local[offset] = lesion.mask
    lesion_distance = None
    best: tuple[str | None, float | None] = (None, None)
    for name in VESSELS:
        vessel = anatomy.masks.get(name)
        if vessel is None or not vessel[box].any():
            continue
        if lesion_distance is None:
            lesion_distance = ndimage.distance_transform_edt(~local, sampling=grid.spacing_mm)
        inscribed = ndimage.distance_transform_edt(vessel[box], sampling=grid.spacing_mm)
        near = vessel[box] & (lesion_distance - inscribed <= HEAT_SINK_DISTANCE_MM)
        if not near.any():
            continue
        calibre = float(2 * inscribed[near].max() - voxel)
        if calibre >= HEAT_SINK_CALIBRE_MM and (best[1] is None or calibre > best[1]):
            best = (name, calibre)
    return best


def load_anatomy(
    image: str | Path,
    labels: str | Path | None = None,
    label_preset: str | None = None,
    label_map: LabelMap | None = None,
    masks: Mapping[str, str | Path] | None = None,
    segments: str | Path | None = None,
    series_uid: str | None = None,
    resample_labels: bool = False,
) -> tuple[Volume, Anatomy | None]:
    """Read an image and its segmentation into an `Anatomy` (None without labels or masks).

    A DICOM-SEG given as labels without a preset or dictionary maps its segment labels to structure names
    ("Liver" → liver; names are matched case-insensitively with spaces as underscores). Masks may be given
    with a label map: each mask replaces its structure from the label map (a tumour mask over a full organ
    label map).
    """
    volume = read_volume(image, series_uid)
    if labels is None and (label_preset or label_map):
        raise InputError("labels", "a label file when a label preset or dictionary is given", "none")
    couinaud = read_labels(segments, volume, resample_labels) if segments is not None else None
    anatomy = None
    if labels is not None:
        label_volume = read_labels(labels, volume, resample_labels)
        if label_preset is None and label_map is None:
            label_map = _segment_names(Path(labels))
        anatomy = anatomy_from_labels(label_volume, label_preset, label_map, couinaud)
    if masks:
        mask_volumes = {name: read_labels(path, volume, resample_labels) for name, path in masks.items()}
        from_masks = anatomy_from_masks(mask_volumes, volume, couinaud)
        if anatomy is None:
            return volume, from_masks
        anatomy = Anatomy(
            anatomy.grid,
            {**anatomy.masks, **from_masks.masks},
            anatomy.couinaud,
            frozenset(anatomy.labelled or ()) | frozenset(from_masks.labelled or ()),
            anatomy.rib_numbers,
        )
    return volume, anatomy


def _segment_names(path: Path) -> dict[str, int]:
    try:
        names = segment_label_map(path)
    except InputError:
        raise InputError(
            "labels", "a label preset or a label dictionary (--label-preset or --label NAME=VALUE)"
        ) from None
    mapping = {}
    for label, number in names.items():
        name = label.strip().lower().replace(" ", "_").replace("tumor", "tumour")
        if name not in STRUCTURES:
            raise InputError(
                f"labels.{label}", f"SEG segment labels that are structure names ({', '.join(STRUCTURES)})", label
            )
        mapping[name] = number
    return mapping
