"""The body model as a figure: axial, coronal and sagittal slices with the outline a probe enters through,
the gas and bone found inside it, and what the field of view leaves out."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cryoplan.imaging.body import BodyModel, ImageWarning
from cryoplan.imaging.plane import PLANES, Plane
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path

#: Outline colours and legend labels of the body figure.
BODY_COLOURS = {"body": "#ff3b30", "internal_gas": "#00e5ff", "bone": "#ffd60a", "liver": "#fdae61"}
_LEGEND = {
    "body": "body outline",
    "internal_gas": "gas inside the body",
    "bone": "bone and cartilage",
    "liver": "liver",
}


def body_figure(model: BodyModel, image_warnings: list[ImageWarning] | None = None) -> Figure:
    """Three orthogonal slices through the liver's centre (else the body's) with the body outline, the gas
    inside it and the bone, titled with the sides the field of view cuts and the warnings' codes."""
    image = model.image
    focus = model.structures.get("liver")
    # the slices cross the liver's centre (else the body's); each view spans the body's box and 10 mm more
    corners = image.index_to_lps(np.array(list(itertools.product(*[(0, n - 1) for n in image.shape]))))
    body_box = _box_lps(image, model.body)
    through = _box_lps(image, focus).mean(axis=0) if focus is not None else body_box.mean(axis=0)
    low, high = np.maximum(body_box[0], corners.min(axis=0)), np.minimum(body_box[1], corners.max(axis=0))
    middle, half = (low + high) / 2, (high - low) / 2 + 10.0
    step = float(max(image.spacing_mm.min(), half.max() / 300.0))
    low_high = (-160.0, 240.0) if model.modality == "CT" else np.percentile(image.array, [1, 99])
    window = (float(low_high[0]), float(low_high[1]))
    grey_image = image.with_array(np.asarray(image.array, dtype=np.float32))
    outlines = {"body": model.body, "internal_gas": model.internal_gas, "bone": model.bone}
    if focus is not None:
        outlines["liver"] = focus
    figure = Figure(figsize=(13.5, 5.2), layout="constrained")
    for ax, name in zip(figure.subplots(1, 3), PLANES):
        (across, up, fixed), _ = PLANES[name]
        centre = middle.copy()
        centre[fixed] = through[fixed]
        plane = replace(
            Plane.orthogonal(name, centre, half[across], step), half_width_mm=half[across], half_height_mm=half[up]
        )
        h, v = plane.coordinates()
        ax.set_facecolor("#202020")  # beyond the field of view
        grey = plane.sample(grey_image, order=1, outside=np.nan)
        ax.imshow(grey, cmap="gray", vmin=window[0], vmax=window[1], extent=plane.extent(), interpolation="nearest")
        for key, mask in outlines.items():
            sampled = plane.sample(image.with_array(mask.astype(np.uint8)), order=0)
            if sampled.any():
                ax.contour(h, v, sampled.astype(float), levels=[0.5], colors=BODY_COLOURS[key], linewidths=1.0)
        for text, position in zip(plane.letters, ((0.02, 0.5), (0.98, 0.5), (0.5, 0.97), (0.5, 0.03))):
            ax.text(*position, text, transform=ax.transAxes, color="yellow", fontsize=12, ha="center", va="center")
        ax.set_xlabel(plane.axis_names[0])
        ax.set_ylabel(plane.axis_names[1])
        ax.set_title(plane.title())
        ax.set_aspect("equal")
    figure.legend(
        [Line2D([0], [0], color=BODY_COLOURS[key], lw=2) for key in outlines],
        [_LEGEND[key] for key in outlines],
        loc="outside lower center",
        ncols=len(outlines),
        facecolor="#3a3a3a",
        labelcolor="white",
    )
    cut = ", ".join(model.cut_sides) or "no side"
    codes = ", ".join(w.code for w in image_warnings or []) or "none"
    figure.suptitle(f"Body ({model.modality}): cut by the field of view on {cut}; warnings: {codes}")
    return figure


def _box_lps(image: Volume, mask: np.ndarray) -> np.ndarray:
    """The LPS bounding box (2, 3) of a mask's voxel centres: lowest and highest x, y, z."""
    points = image.index_to_lps(np.argwhere(mask))
    return np.array([points.min(axis=0), points.max(axis=0)])


def write_body_figure(model: BodyModel, path: Path, image_warnings: list[ImageWarning] | None = None) -> Path:
    """Write `body_figure` as a PNG, atomically."""
    figure = body_figure(model, image_warnings)
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(path)
