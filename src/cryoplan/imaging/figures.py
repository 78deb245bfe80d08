"""Figures of `cryoplan inspect`: axial, coronal and sagittal slices through each lesion with every
structure outlined (matplotlib Figure API, no pyplot).

Slices are sampled in the patient frame through the lesion centroid (`cryoplan.imaging.plane.Plane`),
whatever the orientation of the image, and shown in the radiological convention: the patient's right on
the viewer's left (axial and coronal), anterior at the top of axial views, superior at the top of coronal
and sagittal views, anterior on the left of sagittal views. Axes are LPS millimetres and every panel
carries its orientation letters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cryoplan.imaging.anatomy import STRUCTURES, Anatomy, LesionMeasurement
from cryoplan.imaging.plane import PLANES, Plane
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
    grey_image = image.with_array(image.array.astype(np.float32))
    for ax, plane_name in zip(axes_row, PLANES):
        plane = Plane.orthogonal(plane_name, centre, half_mm, step)
        grey = plane.sample(grey_image, order=1, outside=np.nan)
        structure_slice = plane.sample(label_volume, order=0)
        h, v = plane.coordinates()
        ax.imshow(grey, cmap="gray", vmin=window[0], vmax=window[1], extent=plane.extent(), interpolation="nearest")
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
        ax.set_xlabel(plane.axis_names[0])
        ax.set_ylabel(plane.axis_names[1])
        axis = plane.fixed_axis
        assert axis is not None  # an orthogonal plane fixes one coordinate
        ax.set_title(f"{lesion.id} {plane.name} ({'xyz'[axis]} = {centre[axis]:.1f} mm)")
        for text, position in zip(plane.letters, ((0.02, 0.5), (0.98, 0.5), (0.5, 0.97), (0.5, 0.03))):
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
