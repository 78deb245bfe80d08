"""Figures of a simulation (matplotlib Figure API, no pyplot)."""

from __future__ import annotations

from collections.abc import Sequence

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
