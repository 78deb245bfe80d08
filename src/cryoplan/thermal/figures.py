"""Figures of a simulation (matplotlib Figure API, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cryoplan.thermal.probes import ProbePlacement
from cryoplan.thermal.result import ThermalResult


def temperature_map_figure(
    result: ThermalResult, probes: Sequence[ProbePlacement], isotherms_c: Sequence[float]
) -> Figure:
    """Minimum temperature on the axial plane (constant S) through the probes' active zones, with isotherm
    contours; patient right on the left of the image as in radiological display."""
    grid = result.grid
    centre = np.mean([np.mean(p.active_segment_mm(), axis=0) for p in probes], axis=0)
    k = int(np.clip(round(grid.index_of(centre)[2]), 0, grid.shape[2] - 1))
    plane = result.min_temperature_c[:, :, k].T  # rows: P axis, columns: L axis
    x, y = grid.axis_mm(0), grid.axis_mm(1)
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(plane, origin="upper", cmap="coolwarm", extent=(x[0], x[-1], y[-1], y[0]), aspect="equal")
    contours = axes.contour(x, y, plane, levels=sorted(isotherms_c), colors="k", linewidths=0.8)
    axes.clabel(contours, fmt="%g °C", fontsize=7)
    for p in probes:
        a, b = p.active_segment_mm()
        axes.plot([a[0], b[0]], [a[1], b[1]], color="k", linewidth=2)
    axes.set_xlabel("L (mm)   patient right ← → patient left")
    axes.set_ylabel("P (mm)   anterior ↑ ↓ posterior")
    axes.set_title(f"Minimum temperature, axial plane S = {grid.axis_mm(2)[k]:.1f} mm")
    figure.colorbar(image, ax=axes, label="minimum temperature (°C)")
    return figure


def history_figure(result: ThermalResult, isotherms_c: Sequence[float]) -> Figure:
    """Temperature–time curves at the recorded points, with the isotherm temperatures as dashed lines."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for name, (times, temps) in result.histories.items():
        axes.plot(np.asarray(times) / 60.0, temps, label=name)
    for t in isotherms_c:
        axes.axhline(t, color="0.5", linestyle="--", linewidth=0.7)
    axes.set_xlabel("time (min)")
    axes.set_ylabel("temperature (°C)")
    axes.set_title("Temperature at recorded points")
    axes.legend(fontsize=8)
    return figure


_CATEGORY_COLOURS = {"phantom": "tab:blue", "animal": "tab:orange", "human": "tab:green"}


def validation_figure(document: Mapping[str, Any]) -> Figure:
    """Simulated against measured figure for every validation row: at the joint fit (filled) and predicted
    with the row's source left out of the fit (open); the diagonal and a ±3 mm band."""
    figure = Figure(figsize=(6.4, 6.0), layout="constrained")
    axes = figure.add_subplot()
    rows = document["rows"]
    values = [v for row in rows for v in (row["measured_mm"], row["simulated_mm"], row["loso_simulated_mm"])]
    lo, hi = min(0.0, min(values)) - 2.0, max(values) + 5.0
    axes.fill_between([lo, hi], [lo - 3.0, hi - 3.0], [lo + 3.0, hi + 3.0], color="0.9", label="± 3 mm")
    axes.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8)
    for category, colour in _CATEGORY_COLOURS.items():
        chosen = [row for row in rows if row["category"] == category]
        if not chosen:
            continue
        measured = [row["measured_mm"] for row in chosen]
        axes.errorbar(
            measured,
            [row["simulated_mm"] for row in chosen],
            xerr=[row["sd_mm"] for row in chosen],
            fmt="o",
            color=colour,
            label=f"{category}: joint fit",
        )
        axes.scatter(
            measured,
            [row["loso_simulated_mm"] for row in chosen],
            facecolors="none",
            edgecolors=colour,
            label=f"{category}: source left out",
        )
        for row in chosen:
            axes.annotate(
                row["id"],
                (row["measured_mm"], row["simulated_mm"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (mm)", ylabel="simulated (mm)", aspect="equal")
    axes.set_title(f"Validation rows, {document['grid_mm']:g} mm grid", fontsize=10)
    axes.legend(fontsize=7, loc="upper left")
    return figure


def isotherm_profile_figure(profiles: Mapping[str, Mapping[str, Any]], document: Mapping[str, Any]) -> Figure:
    """Minimum temperature against distance from the probe, one panel per experiment, with the isotherms
    its rows measure (dotted) and, for single-probe radii and widths, the measured distance (marker)."""
    by_id = {row["id"]: row for row in document["rows"]}
    panels = list(profiles.values())
    columns = 3
    rows_n = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(11.0, 2.6 * rows_n), layout="constrained")
    for n, panel in enumerate(panels):
        axes = figure.add_subplot(rows_n, columns, n + 1)
        axes.plot(panel["distance_mm"], panel["temperature_c"], color="k", linewidth=1.0)
        for row_id in panel["rows"]:
            row = by_id[row_id]
            axes.axhline(row["isotherm_c"], color="0.6", linestyle=":", linewidth=0.8)
            single = isinstance(row["setup"], dict) and int(row["setup"].get("count", 1)) == 1
            radius = {"width": 0.5, "radius": 1.0}.get(row["quantity"])
            if single and radius is not None:
                axes.plot(radius * row["measured_mm"], row["isotherm_c"], "o", color="tab:red", markersize=4)
        axes.set_title(panel["label"], fontsize=6)
        axes.set(xlabel="distance (mm)", ylabel="min T (°C)")
        axes.tick_params(labelsize=6)
    return figure
