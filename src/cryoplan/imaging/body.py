"""The patient's body and its organs on the image grid: the outline a probe may enter through, the organs
it must avoid, gas and bone found even where no label names them, and what the field of view leaves out.

The outline is the largest connected region denser than air with every internal cavity (lungs, bowel gas)
filled in, in 3-D and slice by slice along each axis, so that a cavity the field of view opens on a side
or two is still inside. On CT, unlabelled voxels are told apart by their Hounsfield units: air and gas below
−500 HU, fat from −190 to −30 HU, soft tissue from −29 to +150 HU, and bone (or iodinated contrast) above.
On MR, where air and bone are both dark, the outline comes from the signal and the labels, and gas and
bone only from the labels.

References
----------
.. [1] Hu S, Hoffman EA, Reinhardt JM. Automatic lung segmentation for accurate quantitation of volumetric
   X-ray CT images. IEEE Trans Med Imaging 2001;20(6):490–498 (air / body threshold near −500 HU).
.. [2] Mourtzakis M, Prado CMM, Lieffers JR, et al. A practical and precise approach to quantification of
   body composition in cancer patients using computed tomography images acquired during routine care.
   Appl Physiol Nutr Metab 2008;33(5):997–1006 (adipose tissue −190 to −30 HU, muscle −29 to +150 HU).
.. [3] Smith SM. Fast robust automated brain extraction. Hum Brain Mapp 2002;17(3):143–155 (the MR
   background threshold t2 + 0.1 (t98 − t2)).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import SKELETON_PARTS, STRUCTURES, Anatomy, anatomy_from_labels, lesion_components
from cryoplan.imaging.volume import Volume

#: Air (outside the body) and gas (inside it) read below this on CT, HU [1].
AIR_HU = -500.0
#: Adipose tissue on CT, HU [2].
FAT_HU = (-190.0, -30.0)
#: Soft tissue (skeletal muscle and organs) on CT, HU [2]; denser voxels are bone or contrast.
SOFT_TISSUE_HU = (-29.0, 150.0)

#: Default clearance a probe path keeps from each structure, mm: 5 mm from lung and pleura, heart, bowel,
#: stomach, pancreas, kidney, adrenal, spleen, gallbladder, oesophagus and spinal cord; 3 mm from vessels of
#: at least 3 mm, ducts, bone and cartilage. Keys are structure names and the tissue names "bone" and "gas"
#: of `BodyModel.tissue_names`.
STRUCTURE_CLEARANCE_MM: dict[str, float] = {
    "lung": 5.0,
    "trachea": 5.0,
    "heart": 5.0,
    "stomach": 5.0,
    "duodenum": 5.0,
    "small_bowel": 5.0,
    "colon": 5.0,
    "pancreas": 5.0,
    "kidney": 5.0,
    "adrenal": 5.0,
    "spleen": 5.0,
    "gallbladder": 5.0,
    "oesophagus": 5.0,
    "spinal_cord": 5.0,
    "aorta": 3.0,
    "ivc": 3.0,
    "portal_vein": 3.0,
    "hepatic_vein": 3.0,
    "other_vessel": 3.0,
    "bile_duct": 3.0,
    "rib": 3.0,
    "costal_cartilage": 3.0,
    "sternum": 3.0,
    "vertebra": 3.0,
    "bone": 3.0,
    "gas": 5.0,  # unlabelled gas inside the body: lung or bowel
}

#: Organs a probe path must know about; those no label gives are listed in `BodyModel.unknown`.
PATH_RELEVANT = (
    "lung",
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
    "gallbladder",
    "aorta",
    "ivc",
    "portal_vein",
    "hepatic_vein",
    "bile_duct",
    "rib",
    "costal_cartilage",
    "sternum",
    "vertebra",
    "spinal_cord",
)

# Which structure names a point when masks overlap: the finer, more critical structure first.
_PRIORITY = (
    "tumour",
    "bile_duct",
    "hepatic_vein",
    "portal_vein",
    "ivc",
    "aorta",
    "other_vessel",
    "gallbladder",
    "rib",
    "costal_cartilage",
    "sternum",
    "vertebra",
    "spinal_cord",
    "intervertebral_disc",
    "bone",
    "liver",
    *(name for name in STRUCTURES if name not in ("muscle", "fat")),
    "muscle",
    "fat",
)
# (LPS axis, direction along it) → the patient's side that way
_SIDES = {
    (0, -1): "right",
    (0, 1): "left",
    (1, -1): "anterior",
    (1, 1): "posterior",
    (2, -1): "inferior",
    (2, 1): "superior",
}
# A face of the image cut through the body when the body covers at least this share of it (a few voxels of
# skin or couch grazing the edge do not count).
_CUT_FRACTION = 0.01
# Radius of the opening that separates the body from the couch, mm (the couch's plates are a few mm thick).
_OPENING_MM = 4.0


@dataclass(frozen=True, eq=False)
class BodyModel:
    """The body and its organs, every mask boolean on the grid of `image` (LPS affine).

    Attributes
    ----------
    image : Volume
        The CT or MR image.
    modality : str
        ``"CT"`` or ``"MR"``.
    body : numpy.ndarray
        The patient's outline with every internal cavity (lung, bowel gas) filled in; air outside it is the
        only place a path may enter from.
    structures : dict of str to numpy.ndarray
        Named organs from the labels (names of `cryoplan.imaging.anatomy.STRUCTURES`). ``bone`` is the
        skeleton other than its named bones (rib, sternum, vertebra).
    internal_gas : numpy.ndarray
        Gas inside the body (lung, bowel), labelled or not.
    bone : numpy.ndarray
        Bone and cartilage, by label or (CT) by HU.
    unknown : tuple of str
        Path-relevant organs (`PATH_RELEVANT`) that no label gave.
    cut_sides : tuple of str
        Sides on which the field of view cuts the body: "right", "left", "anterior", "posterior",
        "inferior", "superior".
    rib_numbers : numpy.ndarray or None
        Signed rib number per voxel (+1…+12 right, −1…−12 left, 0 elsewhere) where ribs are labelled.
    """

    image: Volume
    modality: str
    body: np.ndarray
    structures: dict[str, np.ndarray]
    internal_gas: np.ndarray
    bone: np.ndarray
    unknown: tuple[str, ...]
    cut_sides: tuple[str, ...]
    rib_numbers: np.ndarray | None = None

    @cached_property
    def voxel_tissue_codes(self) -> tuple[np.ndarray, list[str]]:
        """What lies at each voxel of `image`: an int16 index per voxel into a list of tissue names
        (structures by priority, then by HU class: "air", "gas", "bone", "fat", "soft_tissue")."""
        names = [name for name in _PRIORITY if name in self.structures]
        names = list(dict.fromkeys(names)) + ["air", "gas", "bone", "fat", "soft_tissue"]
        index = np.full(self.image.shape, names.index("soft_tissue"), dtype=np.int16)
        if self.modality == "CT":
            hu = self.image.array
            index[(hu >= FAT_HU[0]) & (hu <= FAT_HU[1])] = names.index("fat")
        index[self.bone] = names.index("bone")
        index[self.internal_gas] = names.index("gas")
        index[~self.body] = names.index("air")
        for name in reversed(names[:-5]):
            index[self.structures[name]] = names.index(name)
        return index, names

    def tissue_index(self, points_lps: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """`tissue_names` as codes: an index per point into the returned tuple of names (fast for the
        millions of voxel centres of a simulation grid).

        Parameters
        ----------
        points_lps : numpy.ndarray
            Points (..., 3) in LPS millimetres; each reads its nearest voxel.

        Returns
        -------
        codes : numpy.ndarray
            int16 array of the points' shape (without the last axis).
        names : tuple of str
            The names the codes index; the last is "outside_image".
        """
        points = np.asarray(points_lps, dtype=np.float64)
        index, names = self.voxel_tissue_codes
        ijk = np.rint(self.image.lps_to_index(points.reshape(-1, 3))).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(self.image.shape)), axis=1)
        codes = np.full(len(ijk), len(names), dtype=np.int16)
        codes[inside] = index[tuple(ijk[inside].T)]
        return codes.reshape(points.shape[:-1]), (*names, "outside_image")

    def tissue_names(self, points_lps: np.ndarray) -> list[str]:
        """What lies at each point: a structure name, else "air" (outside the body), "gas", "bone", "fat"
        or "soft_tissue"; "outside_image" beyond the field of view.

        Parameters
        ----------
        points_lps : numpy.ndarray
            Points (n, 3) in LPS millimetres; each reads its nearest voxel.
        """
        codes, names = self.tissue_index(np.atleast_2d(points_lps))
        return [names[code] for code in codes.tolist()]


def build_body_model(
    image: Volume, anatomy: Anatomy | None, label_map: Volume | None = None, modality: str | None = None
) -> BodyModel:
    """The body model of an image and its segmentation.

    Parameters
    ----------
    image : Volume
        CT (in HU) or MR.
    anatomy : Anatomy or None
        The case's structures on the image grid (liver, tumour, any organs).
    label_map : Volume, optional
        A TotalSegmentator label map of the image (task ``total`` on CT, ``total_mr`` on MR) for the organs
        the anatomy lacks (for example an anatomy of liver and tumour masks); the anatomy's own masks win.
    modality : str, optional
        ``"CT"`` or ``"MR"``; by default the image's modality, else CT when the image holds values below
        −200 (air, lung or fat in HU), else MR.

    Raises
    ------
    InputError
        An anatomy or label map on another grid, or an image with no body in it.
    """
    modality = image_modality(image, modality)
    anatomy = _with_label_map(image, anatomy, label_map, modality)
    masks = dict(anatomy.masks) if anatomy is not None else {}
    labelled = frozenset(anatomy.labelled or ()) if anatomy is not None else frozenset()
    skeleton = masks.get("bone", np.zeros(image.shape, dtype=bool))
    for part in (*SKELETON_PARTS, "costal_cartilage"):
        if part in masks:
            skeleton = skeleton | masks[part]
    if "bone" in masks:
        rest = masks.pop("bone")
        for part in SKELETON_PARTS:
            if part in masks:
                rest = rest & ~masks[part]
        if rest.any():
            masks["bone"] = rest
    labelled_any = np.zeros(image.shape, dtype=bool)
    for mask in masks.values():
        labelled_any |= mask
    if modality == "CT":
        hu = np.asarray(image.array, dtype=np.float32)
        outline = _outline(hu > AIR_HU, image, "a CT with the patient's body in it (voxels above −500 HU)")
    else:
        signal = np.asarray(image.array, dtype=np.float32)
        outline = _outline(signal > _background_threshold(signal), image, "an MR image with the patient's body in it")
    # labels lie inside the body (dark organs on MR); those outside the trunk (an arm's bones) stay outside
    body = _within_box(outline | labelled_any, lambda mask: _largest(_fill_cavities(mask)))
    if modality == "CT":
        internal_gas = body & (hu <= AIR_HU)
        soft_labels = labelled_any & ~skeleton
        bone = skeleton | (body & (hu > SOFT_TISSUE_HU[1]) & ~soft_labels)
    else:
        internal_gas = np.zeros(image.shape, dtype=bool)
        for name in ("lung", "trachea"):
            if name in masks:
                internal_gas |= masks[name]
        internal_gas &= body
        bone = skeleton
    unknown = tuple(name for name in PATH_RELEVANT if name not in labelled)
    return BodyModel(
        image=image,
        modality=modality,
        body=body,
        structures=masks,
        internal_gas=internal_gas,
        bone=bone,
        unknown=unknown,
        cut_sides=cut_sides(image, body),
        rib_numbers=None if anatomy is None else anatomy.rib_numbers,
    )


def image_modality(image: Volume, modality: str | None = None) -> str:
    """``"CT"`` or ``"MR"``: `modality` when given, else the image's own, else CT when the image holds values
    below −200 (air, lung or fat in HU)."""
    modality = modality or image.modality
    if modality in ("CT", "MR"):
        return modality
    if modality:
        raise InputError("image.modality", "CT or MR", modality)
    # Hounsfield units go below −200 wherever air, lung or fat is in view; MR signal is not negative
    # beyond its noise
    return "CT" if image.array.size and float(np.min(image.array)) < -200 else "MR"


def _with_label_map(image: Volume, anatomy: Anatomy | None, label_map: Volume | None, modality: str) -> Anatomy | None:
    """The anatomy with the organs of a TotalSegmentator label map added (its own masks win)."""
    if anatomy is not None and not anatomy.grid.same_grid(image):
        raise InputError("anatomy", "structures on the image grid", f"shape {list(anatomy.grid.shape)}")
    if label_map is None:
        return anatomy
    if not label_map.same_grid(image):
        raise InputError("labels", "a label map on the image grid", f"shape {list(label_map.shape)}")
    organs = anatomy_from_labels(label_map, "totalsegmentator" if modality == "CT" else "totalsegmentator_mr")
    if anatomy is None:
        return organs
    return Anatomy(
        anatomy.grid,
        {**organs.masks, **anatomy.masks},
        anatomy.couinaud,
        frozenset(organs.labelled or ()) | frozenset(anatomy.labelled or ()),
        anatomy.rib_numbers if anatomy.rib_numbers is not None else organs.rib_numbers,
    )


def _outline(dense: np.ndarray, image: Volume, expected: str) -> np.ndarray:
    """The body among the voxels denser than air: the largest region that survives an opening by a box of
    half-width `_OPENING_MM`, grown back by that box over the dense voxels.

    The opening cuts the thin plates of the couch and the blanket from the body; growing back restores the
    skin the opening rounded off. Box filters are separable, so this costs a few passes over the image
    whatever its resolution.
    """
    size = tuple(2 * int(np.floor(_OPENING_MM / s)) + 1 for s in image.spacing_mm)
    core = ndimage.minimum_filter(dense.view(np.uint8), size=size, mode="nearest").view(bool)
    if not core.any():
        raise InputError("image", expected, "none")
    grown = ndimage.maximum_filter(_largest(core).view(np.uint8), size=size, mode="constant")
    body: np.ndarray = dense & np.asarray(grown, dtype=bool)
    return body


def _within_box(mask: np.ndarray, operation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`operation` applied to `mask` within its bounding box grown by one voxel (clipped to the array).

    The grown layer holds no voxel of the mask, so background that reaches the box's side reaches the
    array's border too: fills and components come out as on the whole array, on fewer voxels.
    """
    present = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    box = tuple(slice(max(p[0] - 1, 0), min(p[-1] + 2, n)) for p, n in zip(present, mask.shape))
    result = np.zeros_like(mask)
    result[box] = operation(mask[box])
    return result


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected region of a non-empty mask."""
    labels, _ = ndimage.label(mask)
    return np.asarray(labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:])))


def _fill_cavities(body: np.ndarray) -> np.ndarray:
    """Fill every cavity of the body: whatever background reaches no outside air, in 3-D, and slice by slice
    along each axis.

    Outside air is the background connected to a face of the image the body does not touch, or to the part
    of a face the body touches that lies outside the body's cross-section there. That cross-section is
    filled in 2-D with the edges it shares with other faces the body touches taken as closed, so a cavity
    the field of view opens on one or two sides (a lung base cut by the top slice and a cropped side, colon
    gas against a cropped front) stays inside. Air outside the skin in a corner between two such faces has
    the same shape and is taken as inside too: the safe error (no entry there), where the other would let a
    path enter through gas. The slice-wise fills close what the crossing slices enclose.
    """
    touched = {
        (axis, end): bool(np.take(body, 0 if end < 0 else body.shape[axis] - 1, axis=axis).any())
        for axis in range(3)
        for end in (-1, 1)
    }
    labels, count = ndimage.label(~body)
    outside = np.zeros(count + 1, dtype=bool)
    for (axis, end), is_touched in touched.items():
        face_labels = np.take(labels, 0 if end < 0 else body.shape[axis] - 1, axis=axis)
        if is_touched:
            face = np.take(body, 0 if end < 0 else body.shape[axis] - 1, axis=axis)
            in_face = [a for a in range(3) if a != axis]
            walls = [[touched[(a, -1)], touched[(a, 1)]] for a in in_face]
            face_labels = face_labels[_face_outside(face, walls)]
        outside[np.unique(face_labels)] = True
    outside[0] = False  # label 0 is the body itself
    filled = ~outside[labels]
    for axis in range(3):
        in_slice = np.zeros((3, 3, 3), dtype=bool)
        centre: list[slice | int] = [slice(None)] * 3
        centre[axis] = 1
        in_slice[tuple(centre)] = ndimage.generate_binary_structure(2, 1)
        filled |= _fill_holes(body, in_slice, tuple(a for a in range(3) if a != axis))
    return np.asarray(filled)


def _face_outside(face: np.ndarray, walls: list[list[bool]]) -> np.ndarray:
    """The background of a face of the image that reaches an open edge of the face within it; `walls[k]`
    says which ends of the face's axis k are closed (they border another face the body touches)."""
    padded = np.pad(face, 1)
    for k, (low, high) in enumerate(walls):
        rim: list[slice | int] = [slice(None), slice(None)]
        for closed, position in ((low, 0), (high, -1)):
            if closed:
                rim[k] = position
                padded[tuple(rim)] = True
    labels, _ = ndimage.label(~padded)
    rim_labels = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    reached = np.isin(labels, rim_labels[rim_labels > 0])
    return np.asarray(reached[1:-1, 1:-1])


def _fill_holes(mask: np.ndarray, structure: np.ndarray, open_axes: tuple[int, ...]) -> np.ndarray:
    """`mask` with every region of the background that touches no face of the array along `open_axes`
    filled in (connected by `structure`; with in-slice connectivity, each slice is filled on its own)."""
    labels, _ = ndimage.label(~mask, structure)
    touching = np.zeros(int(labels.max()) + 1, dtype=bool)
    for axis in open_axes:
        for end in (0, mask.shape[axis] - 1):
            touching[np.unique(np.take(labels, end, axis=axis))] = True
    touching[0] = True  # label 0 is the mask itself
    return np.asarray(~touching[labels] | mask)


def _background_threshold(signal: np.ndarray) -> float:
    """The MR background threshold of the brain extraction tool [3]: t2 + 0.1 (t98 − t2), with t2 and t98
    the 2nd and 98th percentiles of the signal."""
    t2, t98 = np.percentile(signal, [2, 98])
    return float(t2 + 0.1 * (t98 - t2))


def image_sides(image: Volume) -> dict[tuple[int, int], str]:
    """The patient side each face of the image looks to: (axis, −1 low end / +1 high end) → side name."""
    sides = {}
    for axis in range(3):
        direction = image.direction[:, axis]
        lps = int(np.argmax(np.abs(direction)))
        sign = 1 if direction[lps] > 0 else -1
        sides[(axis, -1)] = _SIDES[(lps, -sign)]
        sides[(axis, 1)] = _SIDES[(lps, sign)]
    return sides


def cut_sides(image: Volume, body: np.ndarray) -> tuple[str, ...]:
    """Sides on which the body reaches the edge of the image over at least 1 % of that face."""
    cut = []
    for (axis, end), side in image_sides(image).items():
        face = np.take(body, 0 if end < 0 else body.shape[axis] - 1, axis=axis)
        if face.mean() >= _CUT_FRACTION:
            cut.append(side)
    order = ("right", "left", "anterior", "posterior", "inferior", "superior")
    return tuple(sorted(cut, key=order.index))


def check_entry_point(model: BodyModel, point_lps: ArrayLike, field: str) -> np.ndarray:
    """A user-given probe entry point, checked: inside the image, and on the skin or in the air outside it.

    Parameters
    ----------
    model : BodyModel
        The body model of the image.
    point_lps : sequence of 3 floats
        The entry point, LPS millimetres.
    field : str
        Where the point came from, for the error (``imaging.entries.L1``, ``--entry L1``).

    Returns
    -------
    numpy.ndarray
        The point as a float array (3,).

    Raises
    ------
    InputError
        A point outside the image, or inside the body deeper than its skin voxels.
    """
    try:
        point = np.asarray(point_lps, dtype=np.float64)
    except (TypeError, ValueError):
        point = np.full(1, np.nan)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(field, "an entry point [x, y, z] in LPS mm", point_lps)
    ijk = np.rint(model.image.lps_to_index(point)).astype(int)
    shape = np.asarray(model.image.shape)
    where = f"[{', '.join(f'{v:g}' for v in point)}] mm"
    if np.any(ijk < 0) or np.any(ijk >= shape):
        raise InputError(field, "an entry point inside the image's field of view", where)
    if model.body[tuple(ijk)]:
        # a skin voxel has a face neighbour outside the body (the image's edge does not count: a cut is no skin)
        neighbours = [ijk + step for step in np.vstack([np.eye(3, dtype=int), -np.eye(3, dtype=int)])]
        inside = [n for n in neighbours if np.all(n >= 0) and np.all(n < shape)]
        if all(model.body[tuple(n)] for n in inside):
            raise InputError(field, "an entry point on the skin or in the air outside it", f"{where}, inside the body")
    return point


def intercostal_space(model: BodyModel, point_lps: ArrayLike, reach_mm: float = 30.0) -> tuple[str, int] | None:
    """The intercostal space a point lies in, where ribs are labelled one by one: (side, n) for the space
    between ribs n and n + 1, or None when the ribs within `reach_mm` do not bracket the point.

    The ribs near the point are those with a voxel within `reach_mm`; the rib above is the one whose
    nearest voxel lies higher (superior) than the point, the rib below lower. Ribs are numbered from the
    top, so the point is in space n when the nearest rib above is n and the nearest below n + 1.
    """
    if model.rib_numbers is None:
        return None
    image = model.image
    point = np.asarray(point_lps, dtype=np.float64)
    centre = image.lps_to_index(point)
    half = np.ceil(reach_mm / image.spacing_mm).astype(int)
    low = np.maximum(np.floor(centre).astype(int) - half, 0)
    high = np.minimum(np.ceil(centre).astype(int) + half + 1, image.shape)
    if np.any(high <= low):
        return None
    box = tuple(slice(a, b) for a, b in zip(low, high))
    ribs = model.rib_numbers[box]
    index = np.argwhere(ribs != 0)
    if len(index) == 0:
        return None
    lps = image.index_to_lps(index + low)
    distance = np.linalg.norm(lps - point, axis=1)
    numbers = ribs[tuple(index.T)]
    near = distance <= reach_mm
    above: dict[int, float] = {}
    below: dict[int, float] = {}
    for number in np.unique(numbers[near]):
        mine = near & (numbers == number)
        nearest = int(np.argmin(np.where(mine, distance, np.inf)))
        (above if lps[nearest, 2] > point[2] else below)[int(number)] = distance[nearest]
    for side, sign in (("right", 1), ("left", -1)):
        upper = [n * sign for n in above if n * sign > 0]
        lower = [n * sign for n in below if n * sign > 0]
        if upper and lower and min(lower) == max(upper) + 1:
            return side, max(upper)
    return None


# ------------------------------------------------------------------------------------------ field of view

#: A tumour whose margin comes closer than this to the image edge is flagged, mm.
EDGE_CLEARANCE_MM = 10.0
#: Slices further apart than this are flagged, mm.
MAX_SLICE_SPACING_MM = 3.0
#: An image covering less than this craniocaudally is flagged: a 30 mm lesion with a 10 mm margin on each
#: side needs 50 mm, mm.
MIN_CRANIOCAUDAL_MM = 50.0


@dataclass(frozen=True)
class ImageWarning:
    """A limit of the image that the plan and the report must state: a code and one sentence."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def field_of_view_warnings(
    model: BodyModel, margin_mm: float = 5.0, lesion_ids: Collection[str] | None = None
) -> list[ImageWarning]:
    """What the image leaves out, each as an `ImageWarning`.

    Codes: ``body_cut`` (the field of view cuts the body on a side other than above and below, so the skin
    there is not in the image), ``liver_cut`` (the liver reaches the image's edge), ``lesion_near_edge``
    (a lesion with its margin within `EDGE_CLEARANCE_MM` of the edge), ``thick_slices`` (slices more than
    `MAX_SLICE_SPACING_MM` apart), ``few_slices`` (less than `MIN_CRANIOCAUDAL_MM` covered), ``organs_unknown``
    (path-relevant organs no label gives) and ``mr_gas_bone`` (on MR, gas and bone only where labelled).

    Parameters
    ----------
    model : BodyModel
        The body model of the image.
    margin_mm : float
        The ablative margin planned around each lesion.
    lesion_ids : collection of str, optional
        The lesions to check against the image's edge (those to be planned); by default all of them.
    """
    if not 0.0 <= margin_mm <= 20.0:
        raise InputError("margin_mm", "a margin from 0 to 20 mm", margin_mm)
    image = model.image
    found = []
    skin_sides = [side for side in model.cut_sides if side not in ("inferior", "superior")]
    if skin_sides:
        found.append(
            ImageWarning(
                "body_cut",
                f"the field of view cuts the body on the {_listed(skin_sides)} side{_plural(skin_sides)}: the skin "
                "there is not in the image, so no path can be checked to enter there unless its entry point is given",
            )
        )
    if "liver" in model.structures:
        liver_sides = cut_sides(image, model.structures["liver"])
        if liver_sides:
            found.append(
                ImageWarning(
                    "liver_cut",
                    f"the liver reaches the image's {_listed(liver_sides)} edge{_plural(liver_sides)}: the liver "
                    "beyond is not seen",
                )
            )
    if "tumour" in model.structures:
        for lesion_id, (gap, side) in _lesion_edge_gaps(model).items():
            if (lesion_ids is None or lesion_id in lesion_ids) and gap - margin_mm < EDGE_CLEARANCE_MM:
                found.append(
                    ImageWarning(
                        "lesion_near_edge",
                        f"lesion {lesion_id} lies {gap:.1f} mm from the image's {side} edge: with its "
                        f"{margin_mm:g} mm margin it comes within {EDGE_CLEARANCE_MM:g} mm of the edge, so ice "
                        "beyond the image is not seen",
                    )
                )
    axis = int(np.argmax(np.abs(image.direction[2])))
    spacing = float(image.spacing_mm[axis])
    count = image.shape[axis]
    if spacing > MAX_SLICE_SPACING_MM + 1e-6:
        found.append(
            ImageWarning(
                "thick_slices",
                f"slices are {spacing:.1f} mm apart (more than {MAX_SLICE_SPACING_MM:g} mm): small lesions and "
                "thin structures between them may be missed",
            )
        )
    if count * spacing < MIN_CRANIOCAUDAL_MM:
        found.append(
            ImageWarning(
                "few_slices",
                f"the image covers {count * spacing:.0f} mm craniocaudally in {count} slices (less than "
                f"{MIN_CRANIOCAUDAL_MM:g} mm): organs above and below a probe path are not seen",
            )
        )
    if model.unknown:
        found.append(
            ImageWarning(
                "organs_unknown",
                f"no label gives {_listed(model.unknown)}: "
                + (
                    "only the gas and bone among them are found (by HU) and avoided"
                    if model.modality == "CT"
                    else "they are not avoided"
                ),
            )
        )
    if model.modality == "MR":
        found.append(
            ImageWarning(
                "mr_gas_bone",
                "on MR, gas and bone are both dark: they are known only where labelled",
            )
        )
    return found


def _plural(names: Sequence[str]) -> str:
    return "s" if len(names) > 1 else ""


def _listed(names: Sequence[str]) -> str:
    names = [name.replace("_", " ") for name in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _lesion_edge_gaps(model: BodyModel) -> dict[str, tuple[float, str]]:
    """Per lesion (ids L1, L2, … as `cryoplan.imaging.anatomy.measure_lesions` gives them): the gap between
    its voxels and the nearest edge of the image, mm, and the side of that edge."""
    image = model.image
    sides = image_sides(image)
    spacing = image.spacing_mm
    gaps = {}
    anatomy = Anatomy(image, {"tumour": model.structures["tumour"]})
    for number, mask in enumerate(lesion_components(anatomy), start=1):
        best = (np.inf, "")
        for axis in range(3):
            present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
            low = present[0] * spacing[axis]
            high = (image.shape[axis] - 1 - present[-1]) * spacing[axis]
            best = min(best, (float(low), sides[(axis, -1)]), (float(high), sides[(axis, 1)]))
        gaps[f"L{number}"] = best
    return gaps
