"""Figures of `cryoplan inspect`: axial, coronal and sagittal slices through each lesion with every
structure outlined (matplotlib Figure API, no pyplot).

Slices are sampled in the patient frame through the lesion centroid, whatever the orientation of the
image, and shown in the radiological convention: the patient's right on the viewer's left (axial and
coronal), anterior at the top of axial views, superior at the top of coronal and sagittal views, anterior
on the left of sagittal views. Axes are LPS millimetres and every panel carries its orientation letters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import ndimage

from cryoplan.imaging.anatomy import STRUCTURES, Anatomy, LesionMeasurement
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path

COLOURS = {
    "liver": "#fdae61",
    "tumour": "#ffffff",
    "hepatic_vein": "#2c7bb6",
    "portal_vein": "#d7191c",
    "ivc": "#5e3c99",
    "aorta": "#e66101",
    "bile_duct": "#1a9641",
    "gallbladder": "#a6d96a",
    "bone": "#00e5ff",
}
# plane: (horizontal LPS axis, vertical LPS axis, fixed axis) and the letters at left, right, top, bottom.
PLANES = {
    "axial": ((0, 1, 2), ("R", "L", "A", "P")),
    "coronal": ((0, 2, 1), ("R", "L", "S", "I")),
    "sagittal": ((1, 2, 0), ("A", "P", "S", "I")),
}
AXIS_NAMES = ("x (mm, → patient left)", "y (mm, → posterior)", "z (mm, → superior)")


def _plane_sample(
    volume: Volume,
    centre: np.ndarray,
    axes: tuple[int, int, int],
    half_mm: float,
    step_mm: float,
    order: int,
    outside: float = 0.0,
):
    """Sample `volume` on a square of the patient frame through `centre`: values (vertical, horizontal) and
    the offsets (mm) of the samples from the centre; `outside` beyond the image."""
    h_axis, v_axis, _ = axes
    offsets = np.arange(-half_mm, half_mm + step_mm / 2, step_mm)
    points = np.zeros((len(offsets), len(offsets), 3)) + centre
    points[..., h_axis] += offsets[None, :]
    points[..., v_axis] += offsets[:, None]
    index = volume.lps_to_index(points)
    values = ndimage.map_coordinates(
        volume.array, np.moveaxis(index, -1, 0), order=order, mode="constant", cval=outside
    )
    return values, offsets


def lesion_figure(image: Volume, anatomy: Anatomy, lesion: LesionMeasurement, half_mm: float = 50.0) -> Figure:
    """Three orthogonal slices through a lesion's centroid with every structure's outline."""
    centre = np.asarray(lesion.centroid_lps_mm)
    step = float(min(image.spacing_mm.min(), 1.0))
    figure = Figure(figsize=(13.5, 4.8), layout="constrained")
    axes_row = figure.subplots(1, 3)
    labels = np.zeros(anatomy.grid.shape, dtype=np.uint8)
    for number, name in enumerate(STRUCTURES, start=1):
        if name in anatomy.masks:
            labels[anatomy.masks[name]] = number
    label_volume = anatomy.grid.with_array(labels)
    window = (-160.0, 240.0) if image.modality == "CT" else tuple(np.percentile(image.array, [1, 99]))
    for ax, (plane, (axes, letters)) in zip(axes_row, PLANES.items()):
        grey, offsets = _plane_sample(
            image.with_array(image.array.astype(np.float32)), centre, axes, half_mm, step, 1, np.nan
        )
        structure_slice, _ = _plane_sample(label_volume, centre, axes, half_mm, step, 0)
        h = centre[axes[0]] + offsets
        v = centre[axes[1]] + offsets
        ax.imshow(
            grey,
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
            origin="lower",
            extent=(h[0], h[-1], v[0], v[-1]),
            interpolation="nearest",
        )
        for number, name in enumerate(STRUCTURES, start=1):
            if np.any(structure_slice == number):
                ax.contour(
                    h,
                    v,
                    (structure_slice == number).astype(float),
                    levels=[0.5],
                    colors=COLOURS[name],
                    linewidths=1.6 if name == "tumour" else 1.0,
                )
        # Radiological convention: patient right (−x) on the viewer's left, anterior (−y) at the top of
        # axial views, superior (+z) at the top; anterior on the left of sagittal views.
        if plane == "axial":
            ax.invert_yaxis()
        ax.set_xlabel(AXIS_NAMES[axes[0]])
        ax.set_ylabel(AXIS_NAMES[axes[1]])
        ax.set_title(f"{lesion.id} {plane} ({AXIS_NAMES[axes[2]][0]} = {centre[axes[2]]:.1f} mm)")
        for text, position in zip(letters, ((0.02, 0.5), (0.98, 0.5), (0.5, 0.97), (0.5, 0.03))):
            ax.text(
                *position,
                text,
                transform=ax.transAxes,
                color="yellow",
                fontsize=12,
                fontweight="bold",
                ha="center",
                va="center",
            )
        ax.set_aspect("equal")
    present = [name for name in STRUCTURES if name in anatomy.masks]
    figure.legend(
        [Line2D([0], [0], color=COLOURS[name], lw=2) for name in present],
        [name.replace("_", " ") for name in present],
        loc="outside lower center",
        ncols=len(present),
        facecolor="#3a3a3a",
        labelcolor="white",
        frameon=True,
    )
    figure.suptitle(f"Lesion {lesion.id}: {lesion.max_diameter_mm:.1f} mm, {lesion.volume_ml:.2f} ml")
    return figure


def write_lesion_figures(image: Volume, anatomy: Anatomy, lesions: list[LesionMeasurement], folder: Path) -> list[Path]:
    """Write ``<id>.png`` for every lesion into `folder` (atomically, file by file); returns the paths."""
    paths = []
    for lesion in lesions:
        path = Path(folder) / f"{lesion.id}.png"
        figure = lesion_figure(image, anatomy, lesion)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths
