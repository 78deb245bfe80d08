"""Figures of a plan and of a verification (matplotlib Figure API, no pyplot).

Every slice is resampled in the patient frame, whatever the orientation of the images it comes from, and
shown in the radiological convention: the patient's right on the viewer's left in axial and coronal
views, anterior at the top of axial views, anterior on the left of sagittal views, superior at the top of
coronal and sagittal views. Axes are in millimetres of the DICOM patient frame (LPS) and every panel
carries its orientation letters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from numpy.typing import ArrayLike
from skimage.measure import marching_cubes

from cryoplan.imaging.plane import PLANES, Plane
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path

ISOTHERM_COLOURS = {0.0: "#2c7fb8", -20.0: "#7b3294", -40.0: "#d7191c"}
# Legends sit on a dark panel so that the white tumour outline shows in them as on the images.
LEGEND = dict(frameon=True, facecolor="#3a3a3a", edgecolor="none", labelcolor="white", framealpha=1.0)


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 150) -> None:
    """Write a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def decorate(ax: Axes, plane: Plane, title: str) -> None:
    """Orientation letters at the panel's edges, the plane's position in the title, axis labels in mm."""
    left, right, top, bottom = plane.letters
    style: dict[str, Any] = dict(
        transform=ax.transAxes,
        color="white",
        fontsize=9,
        fontweight="bold",
        bbox=dict(facecolor="black", alpha=0.55, pad=1.5, edgecolor="none"),
    )
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    ax.set_title(f"{title}\n{plane.title()}", fontsize=9)
    ax.set_xlabel(plane.axis_names[0], fontsize=8)
    ax.set_ylabel(plane.axis_names[1], fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")


def _contour(
    ax: Axes, plane: Plane, values: np.ndarray, level: float, colour: str, style: str = "solid", width: float = 1.4
) -> None:
    if np.isfinite(values).any() and np.nanmin(values) < level < np.nanmax(values):
        horizontal, vertical = plane.coordinates()
        ax.contour(
            horizontal,
            vertical,
            np.nan_to_num(values, nan=np.nanmax(values)),
            levels=[level],
            colors=[colour],
            linewidths=width,
            linestyles=style,
        )


def _background(ax: Axes, plane: Plane, ct: Volume | None) -> None:
    ax.set_facecolor("black")  # beyond the image
    if ct is None:
        return
    # A soft-tissue window (W 400, L 40).
    ax.imshow(
        plane.sample(ct, outside=np.nan),
        cmap="gray",
        vmin=-160,
        vmax=240,
        extent=plane.extent(),
        origin="upper",
        interpolation="bilinear",
    )


def lesion_slices_figure(
    centre_lps: ArrayLike,
    *,
    temperature: Volume,
    tumour: Volume,
    ct: Volume | None = None,
    margin: Volume | None = None,
    structures: dict[str, Volume] | None = None,
    probes: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    lethal_isotherm_c: float = -20.0,
    title: str = "",
    half_width_mm: float = 40.0,
) -> Figure:
    """Axial, coronal and sagittal slices through a lesion: tumour, margin, probes and isotherm contours.

    Parameters
    ----------
    centre_lps : array of 3 float
        Slice centre (the lesion centroid), LPS mm.
    temperature : Volume
        Minimum temperature reached (°C).
    tumour, margin : Volume
        Tumour mask and tumour + margin mask (any grid in the same frame).
    structures : dict, optional
        ``{name: mask}`` outlined in thin lines (bile duct, vessels).
    probes : list of (label, tip_lps, entry_lps)
    """
    centre = np.asarray(centre_lps, dtype=np.float64)
    figure = Figure(figsize=(11.5, 4.6), layout="constrained")
    axes = figure.subplots(1, 3)
    structure_colours = ["#1a9641", "#fdae61", "#e6e600", "#f781bf"]
    handles = [
        Line2D([], [], color="white", lw=2, label="tumour"),
        Line2D([], [], color="white", lw=1.2, ls="--", label="tumour + margin"),
    ]
    handles += [
        Line2D(
            [],
            [],
            color=ISOTHERM_COLOURS.get(float(t), "cyan"),
            lw=1.6,
            label=f"{t:g} °C" + (" (lethal)" if t == lethal_isotherm_c else ""),
        )
        for t in isotherms_c
    ]
    for (name, _), colour in zip((structures or {}).items(), structure_colours):
        handles.append(Line2D([], [], color=colour, lw=1, label=name.replace("_", " ")))
    handles.append(Line2D([], [], color="yellow", marker="o", lw=1.5, label="probe (tip ●)"))
    for ax, plane_name in zip(axes, ("axial", "coronal", "sagittal")):
        plane = Plane.orthogonal(plane_name, centre, half_width_mm)
        _background(ax, plane, ct)
        _contour(ax, plane, plane.sample(tumour, order=1), 0.5, "white", width=2.0)
        if margin is not None:
            _contour(ax, plane, plane.sample(margin, order=1), 0.5, "white", "dashed", 1.2)
        for (_name, mask), colour in zip((structures or {}).items(), structure_colours):
            _contour(ax, plane, plane.sample(mask, order=1), 0.5, colour, width=1.0)
        temperatures = plane.sample(temperature, outside=np.nan)
        for isotherm in isotherms_c:
            _contour(ax, plane, temperatures, isotherm, ISOTHERM_COLOURS.get(float(isotherm), "cyan"))
        labels_at: dict[tuple[float, float], list[str]] = {}
        for label, tip, entry in probes:
            (th, tv), (eh, ev) = plane.project(np.stack([tip, entry]))
            ax.plot([eh, th], [ev, tv], color="yellow", lw=1.5)
            ax.plot([th], [tv], "o", color="yellow", ms=4)
            # Probes seen end-on or behind one another share one label.
            key = min(labels_at, key=lambda k: np.hypot(k[0] - th, k[1] - tv), default=None)
            if key is not None and np.hypot(key[0] - th, key[1] - tv) < 3.0:
                labels_at[key].append(label)
            else:
                labels_at[(th, tv)] = [label]
        for (th, tv), names in labels_at.items():
            ax.annotate(
                ",".join(names), (th, tv), xytext=(4, 4), textcoords="offset points", color="yellow", fontsize=7
            )
        horizontal, vertical = plane.coordinates()
        ax.set_xlim(horizontal[0], horizontal[-1])
        ax.set_ylim(vertical[-1], vertical[0])
        decorate(ax, plane, title)
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=8, **LEGEND)
    return figure


def overview_3d_figure(
    temperature: Volume,
    tumours: dict[str, Volume],
    *,
    lethal_isotherm_c: float = -20.0,
    probes: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
    vessels: Volume | None = None,
    title: str = "3-D overview",
) -> Figure:
    """A 3-D view of the tumours, the lethal isotherm surface, large vessels and the probe paths.

    Surfaces by marching cubes (Lorensen & Cline, SIGGRAPH 1987) on each volume's own grid, mapped to
    LPS millimetres through its affine.
    """

    figure = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = figure.add_subplot(projection="3d")

    def add_surface(volume: Volume, level: float, colour: str, alpha: float, below: bool = False) -> bool:
        data = np.asarray(volume.array, dtype=np.float32)
        if below:
            data = -data
            level = -level
        if not (data.min() < level < data.max()):
            return False
        step = max(1, int(np.ceil(max(data.shape) / 90)))
        # scikit-image leaves marching_cubes unannotated
        vertices, faces, _, _ = marching_cubes(data[::step, ::step, ::step], level)  # type: ignore[no-untyped-call]
        vertices = volume.index_to_lps(vertices * step)
        ax.add_collection3d(Poly3DCollection(vertices[faces], facecolor=colour, edgecolor="none", alpha=alpha))
        return True

    handles = []
    for tumour in tumours.values():
        add_surface(tumour.with_array(np.asarray(tumour.array, dtype=np.float32)), 0.5, "#d95f02", 0.9)
    handles.append(Line2D([], [], color="#d95f02", lw=6, label="tumour"))
    if add_surface(
        temperature, lethal_isotherm_c, ISOTHERM_COLOURS.get(lethal_isotherm_c, "#7b3294"), 0.25, below=True
    ):
        handles.append(
            Line2D(
                [],
                [],
                color=ISOTHERM_COLOURS.get(lethal_isotherm_c, "#7b3294"),
                lw=6,
                alpha=0.4,
                label=f"lethal isotherm {lethal_isotherm_c:g} °C",
            )
        )
    if vessels is not None and np.any(vessels.array):
        add_surface(vessels.with_array(np.asarray(vessels.array, dtype=np.float32)), 0.5, "#2166ac", 0.35)
        handles.append(Line2D([], [], color="#2166ac", lw=6, alpha=0.5, label="large vessels"))
    for label, tip, entry in probes:
        ax.plot(*np.stack([entry, tip]).T, color="black", lw=1.5)
        ax.scatter(*tip, color="black", s=10)
        ax.text(*entry, label, fontsize=7)
    if probes:
        handles.append(Line2D([], [], color="black", lw=1.5, label="probe paths"))
    corners = np.array(
        [
            [i, j, k]
            for i in (0, temperature.shape[0] - 1)
            for j in (0, temperature.shape[1] - 1)
            for k in (0, temperature.shape[2] - 1)
        ]
    )
    bounds = temperature.index_to_lps(corners)
    ax.set_xlim(bounds[:, 0].min(), bounds[:, 0].max())
    ax.set_ylim(bounds[:, 1].max(), bounds[:, 1].min())  # anterior towards the viewer
    ax.set_zlim(bounds[:, 2].min(), bounds[:, 2].max())
    ax.set_box_aspect(np.ptp(bounds, axis=0))
    ax.set_xlabel("x (mm, → patient left)", fontsize=8)
    ax.set_ylabel("y (mm, → posterior)", fontsize=8)
    ax.set_zlabel("z (mm, → superior)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.view_init(elev=20, azim=-60)
    ax.set_title(title, fontsize=10)
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, **LEGEND)
    return figure


def temperature_history_figure(
    histories: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    phases: Sequence[tuple[str, float, float]] = (),
    title: str = "Temperature at the tumour edge and the nearest duct",
) -> Figure:
    """Temperature–time curves at named points, with the isotherms and the protocol's phases shaded.

    Parameters
    ----------
    histories : dict
        ``{point name: (t_s, temperature_c)}``.
    phases : list of (name, start_min, end_min)
    """
    figure = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = figure.subplots()
    for index, (name, start, end) in enumerate(phases):
        if name == "freeze":
            ax.axvspan(start, end, color="#deebf7", zorder=0, label="freeze" if index == 0 else None)
    for name, (times_s, temperatures_c) in histories.items():
        ax.plot(np.asarray(times_s) / 60.0, temperatures_c, lw=1.6, label=name)
    for isotherm in isotherms_c:
        ax.axhline(isotherm, color=ISOTHERM_COLOURS.get(float(isotherm), "grey"), lw=0.8, ls=":")
        ax.annotate(
            f"{isotherm:g} °C",
            (1.0, isotherm),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_xlabel("time from the start of the first freeze (min)")
    ax.set_ylabel("temperature (°C)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return figure


def coverage_curve_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    lethal_isotherm_c: float = -20.0,
    title: str = "Coverage curve (cumulative tumour volume by minimum temperature)",
) -> Figure:
    """Fraction of each tumour (and tumour + margin) whose minimum temperature is ≤ T, against T.

    Parameters
    ----------
    curves : dict
        ``{label: (temperatures_c, fraction)}`` from `cryoplan.planning.coverage.coverage_curve`.
    """
    figure = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = figure.subplots()
    for label, (temperatures_c, fraction) in curves.items():
        ax.plot(temperatures_c, 100.0 * np.asarray(fraction), lw=1.8, label=label)
    ax.axvline(
        lethal_isotherm_c,
        color=ISOTHERM_COLOURS.get(lethal_isotherm_c, "purple"),
        ls="--",
        lw=1,
        label=f"lethal isotherm {lethal_isotherm_c:g} °C",
    )
    ax.axhline(99.0, color="grey", ls=":", lw=1, label="99 % target")
    ax.set_xlabel("minimum temperature reached T (°C)")
    ax.set_ylabel("volume colder than T (%)")
    ax.set_ylim(0, 102)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return figure


def probability_map_figure(
    centre_lps: ArrayLike,
    probability: Volume,
    tumour: Volume,
    *,
    margin: Volume | None = None,
    ct: Volume | None = None,
    samples: int = 0,
    half_width_mm: float = 35.0,
    title: str = "Probability of lethal coverage",
) -> Figure:
    """Axial, coronal and sagittal maps of the probability that a voxel reaches the lethal isotherm."""
    centre = np.asarray(centre_lps, dtype=np.float64)
    figure = Figure(figsize=(11.5, 4.4), layout="constrained")
    axes = figure.subplots(1, 3)
    image = None
    for ax, plane_name in zip(axes, ("axial", "coronal", "sagittal")):
        plane = Plane.orthogonal(plane_name, centre, half_width_mm)
        _background(ax, plane, ct)
        values = plane.sample(probability, order=1)
        image = ax.imshow(
            np.ma.masked_less(values, 0.01),
            cmap="magma",
            vmin=0,
            vmax=1,
            alpha=0.85,
            extent=plane.extent(),
            origin="upper",
            interpolation="bilinear",
        )
        _contour(ax, plane, plane.sample(tumour), 0.5, "white", width=2.0)
        if margin is not None:
            _contour(ax, plane, plane.sample(margin), 0.5, "white", "dashed", 1.2)
        _contour(ax, plane, values, 0.95, "#00e5ff", width=1.2)
        horizontal, vertical = plane.coordinates()
        ax.set_xlim(horizontal[0], horizontal[-1])
        ax.set_ylim(vertical[-1], vertical[0])
        decorate(ax, plane, f"{title} ({samples} samples)" if samples else title)
    assert image is not None  # one image per panel, three panels
    figure.colorbar(image, ax=axes, shrink=0.8, label="probability of reaching the lethal isotherm")
    figure.legend(
        handles=[
            Line2D([], [], color="white", lw=2, label="tumour"),
            Line2D([], [], color="white", ls="--", label="tumour + margin"),
            Line2D([], [], color="#00e5ff", label="95 % probability"),
        ],
        loc="outside lower center",
        ncol=3,
        fontsize=8,
        **LEGEND,
    )
    return figure


def margin_map_figure(
    intra_image: Volume,
    tumour: np.ndarray,
    ice: np.ndarray,
    lethal: np.ndarray,
    surface_margin_mm: np.ndarray,
    *,
    margin_mm: float,
    half_width_mm: float = 40.0,
    title: str = "Margin map",
) -> Figure:
    """Slices of the intraprocedural CT through the tumour: tumour, ice edge, predicted lethal edge, and
    the lethal margin on the tumour surface coloured against the required margin (mm)."""
    tumour_volume = intra_image.with_array(np.asarray(tumour, dtype=np.float32))
    centre = intra_image.index_to_lps(np.argwhere(tumour).mean(axis=0))
    worst = np.nanargmin(np.where(np.isfinite(surface_margin_mm), surface_margin_mm, np.inf))
    worst_lps = intra_image.index_to_lps(np.unravel_index(worst, surface_margin_mm.shape))
    figure = Figure(figsize=(11.5, 4.6), layout="constrained")
    axes = figure.subplots(1, 3)
    margin_points = np.argwhere(np.isfinite(surface_margin_mm))
    margin_lps = intra_image.index_to_lps(margin_points)
    margin_values = surface_margin_mm[tuple(margin_points.T)]
    scatter = None
    for ax, plane_name in zip(axes, ("axial", "coronal", "sagittal")):
        # Centre the slices on the thinnest margin so that it shows.
        fixed = PLANES[plane_name][0][2]
        plane = Plane.orthogonal(plane_name, np.where(np.arange(3) == fixed, worst_lps, centre), half_width_mm)
        _background(ax, plane, intra_image)
        _contour(ax, plane, plane.sample(tumour_volume), 0.5, "white", width=2.0)
        _contour(
            ax,
            plane,
            plane.sample(intra_image.with_array(np.asarray(ice, dtype=np.float32))),
            0.5,
            ISOTHERM_COLOURS[0.0],
            width=1.5,
        )
        if lethal is not None:
            _contour(
                ax,
                plane,
                plane.sample(intra_image.with_array(np.asarray(lethal, dtype=np.float32))),
                0.5,
                ISOTHERM_COLOURS[-20.0],
                width=1.5,
            )
        near = np.abs(margin_lps[:, fixed] - plane.centre_lps[fixed]) <= 0.6 * intra_image.spacing_mm.max()
        projected = plane.project(margin_lps[near])
        scatter = ax.scatter(
            projected[:, 0],
            projected[:, 1],
            c=margin_values[near],
            cmap="RdYlGn",
            vmin=0,
            vmax=2 * margin_mm,
            s=9,
            edgecolors="none",
        )
        ((wh, wv),) = plane.project(worst_lps)
        ax.plot([wh], [wv], marker="x", color="red", ms=9, mew=2)
        horizontal, vertical = plane.coordinates()
        ax.set_xlim(horizontal[0], horizontal[-1])
        ax.set_ylim(vertical[-1], vertical[0])
        decorate(ax, plane, title)
    assert scatter is not None  # one scatter per panel, three panels
    figure.colorbar(scatter, ax=axes, shrink=0.8, label="lethal margin at the tumour surface (mm)")
    figure.legend(
        handles=[
            Line2D([], [], color="white", lw=2, label="tumour (registered)"),
            Line2D([], [], color=ISOTHERM_COLOURS[0.0], lw=1.5, label="ice edge (observed)"),
            Line2D([], [], color=ISOTHERM_COLOURS[-20.0], lw=1.5, label="lethal edge (predicted)"),
            Line2D([], [], color="red", marker="x", lw=0, label="thinnest margin"),
        ],
        loc="outside lower center",
        ncol=4,
        fontsize=8,
        **LEGEND,
    )
    return figure


PATH_STRUCTURE_LABELS = {"lung": "lung and gas"}
PATH_STRUCTURE_COLOURS = {
    "skin": "#e0e0e0",
    "liver": "#fdae61",
    "lung": "#1b9e77",
    "bone": "#00e5ff",
    "bowel": "#fb9a99",
    "vessels": "#e7298a",
}


def path_figure(
    ct: Volume,
    structures: dict[str, Volume],
    tumour: Volume,
    temperature: Volume,
    probes: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    lethal_isotherm_c: float = -20.0,
    title: str = "",
) -> Figure:
    """The probe paths from the skin to the tips: for each probe an oblique slice containing its whole path
    (`Plane.along_path`), and axial, coronal and sagittal slices through the first probe's path wide enough
    to show its skin entry, with the skin, liver, lung, bone, bowel and vessels outlined, the tumour, the
    probes and the isotherms of the final simulation.

    Parameters
    ----------
    ct : Volume
        The image.
    structures : dict
        Masks outlined, by the names of `PATH_STRUCTURE_COLOURS` (any present).
    tumour, temperature : Volume
        Tumour mask and minimum temperature reached (°C; NaN beyond the simulation grid).
    probes : list of (label, tip_lps, entry_lps)
    """
    count = len(probes)
    columns = max(count, 3)
    figure = Figure(figsize=(4.2 * columns, 8.6), layout="constrained")
    axes = figure.subplots(2, columns, squeeze=False)
    first_tip, first_entry = probes[0][1], probes[0][2]
    half = float(np.linalg.norm(first_tip - first_entry)) / 2 + 25.0
    planes = [Plane.along_path(entry, tip, beyond_mm=20.0, half_height_mm=35.0) for _, tip, entry in probes]
    middle = (first_tip + first_entry) / 2
    planes += [Plane.orthogonal(name, middle, half, step_mm=1.0) for name in ("axial", "coronal", "sagittal")]
    panels = [axes[0, n] for n in range(count)] + [axes[1, n] for n in range(3)]
    for ax in axes.ravel():
        if not any(ax is panel for panel in panels):
            ax.set_axis_off()
    for index, (ax, plane) in enumerate(zip(panels, planes)):
        _background(ax, plane, ct)
        for name, mask in structures.items():
            _contour(ax, plane, plane.sample(mask, order=1), 0.5, PATH_STRUCTURE_COLOURS.get(name, "white"), width=1.0)
        _contour(ax, plane, plane.sample(tumour, order=1), 0.5, "white", width=2.0)
        temperatures = plane.sample(temperature, outside=np.nan)
        for isotherm in isotherms_c:
            _contour(ax, plane, temperatures, isotherm, ISOTHERM_COLOURS.get(float(isotherm), "cyan"))
        for label, tip, entry in probes:
            # An oblique panel shows its own probe in full; others only where they come within 3 mm of it.
            if plane.fixed_axis is None and plane.distance_mm(np.stack([tip, entry])).max() > 3.0:
                continue
            (th, tv), (eh, ev) = plane.project(np.stack([tip, entry]))
            ax.plot([eh, th], [ev, tv], color="yellow", lw=1.5)
            ax.plot([th], [tv], "o", color="yellow", ms=4)
            ax.plot([eh], [ev], "s", color="yellow", ms=4)
            ax.annotate(label, (th, tv), xytext=(4, 4), textcoords="offset points", color="yellow", fontsize=7)
        horizontal, vertical = plane.coordinates()
        ax.set_xlim(horizontal[0], horizontal[-1])
        ax.set_ylim(vertical[-1], vertical[0])
        name = probes[index][0] if index < count else probes[0][0]
        decorate(ax, plane, f"{title} {name}".strip())
    handles = [Line2D([], [], color="white", lw=2, label="tumour")]
    handles += [
        Line2D(
            [], [], color=PATH_STRUCTURE_COLOURS.get(name, "white"), lw=1, label=PATH_STRUCTURE_LABELS.get(name, name)
        )
        for name in structures
    ]
    handles += [
        Line2D(
            [],
            [],
            color=ISOTHERM_COLOURS.get(float(t), "cyan"),
            lw=1.6,
            label=f"{t:g} °C" + (" (lethal)" if t == lethal_isotherm_c else ""),
        )
        for t in isotherms_c
    ]
    handles.append(Line2D([], [], color="yellow", marker="o", lw=1.5, label="probe (skin ■, tip ●)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8, **LEGEND)
    return figure
