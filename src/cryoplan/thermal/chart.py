"""The manufacturer-chart question: parallel probes in a homogeneous medium, and the size of each isotherm."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cryoplan.errors import InputError
from cryoplan.thermal.grid import Grid
from cryoplan.thermal.probes import ProbePlacement, get_probe
from cryoplan.thermal.protocol import Protocol
from cryoplan.thermal.solver import kernel_radius_mm, simulate
from cryoplan.thermal.tissue import Tissue

LAYOUTS = ("line", "triangle", "square")
PROBE_AXIS = np.array([0.0, 0.0, -1.0])
"""Chart probes are inserted along −S (from the head end towards the feet); tips level at S = 0."""


def probe_layout(probe_id: str, count: int = 1, spacing_mm: float = 15.0, layout: str = "line") -> list[ProbePlacement]:
    """Parallel probes with tips level: `line` along L (the width direction), `triangle` at the corners of
    an equilateral triangle, `square` at the corners of a square; `spacing_mm` between neighbours.

    Raises `InputError` for an unknown probe or layout, a count the layout cannot take, or a spacing that
    is not positive.
    """
    get_probe(probe_id, field="probe")
    if layout not in LAYOUTS:
        raise InputError("layout", f"one of {', '.join(LAYOUTS)}", layout)
    if not isinstance(count, int) or count < 1:
        raise InputError("count", "a positive number of probes", count)
    if count > 1 and not (math.isfinite(spacing_mm) and spacing_mm > 0):
        raise InputError("spacing", "a positive distance between probes in mm", spacing_mm)
    if count == 1:
        xy = np.zeros((1, 2))
    elif layout == "line":
        xy = np.stack([(np.arange(count) - (count - 1) / 2) * spacing_mm, np.zeros(count)], axis=1)
    elif layout == "triangle":
        if count != 3:
            raise InputError("count", "3 probes for the triangle layout", count)
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        xy = spacing_mm / math.sqrt(3) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        if count != 4:
            raise InputError("count", "4 probes for the square layout", count)
        xy = spacing_mm / 2 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    return [ProbePlacement(probe_id, np.array([x, y, 0.0]), PROBE_AXIS) for x, y in xy]


def chart_grid(
    placements: Sequence[ProbePlacement],
    medium: Tissue,
    protocol: Protocol,
    spacing_mm: float,
    margin_mm: float | None = None,
) -> Grid:
    """A grid around the probes' active zones wide enough that the bath at its faces does not change the
    isotherms: 25 mm for the ice plus 3 √(α_u t) for the thermal disturbance ahead of it (erfc(1.5) < 4 %
    of the temperature drop, where the drop itself has decayed), unless `margin_mm` is given. A closing
    tract freeze widens it to the active zones' withdrawn positions."""
    alpha_u = medium.conductivity_unfrozen_w_mk / medium.heat_capacity_unfrozen_j_m3k
    margin = 25.0 + 3.0 * math.sqrt(alpha_u * protocol.total_seconds) * 1e3 if margin_mm is None else margin_mm
    withdrawal_mm = sum(phase.withdrawal_mm for phase in protocol.phases)
    points = [
        point - back * p.direction
        for p in placements
        for back in (0.0, withdrawal_mm)
        for point in (*p.active_segment_mm(), p.tip_mm)
    ]
    largest = max(kernel_radius_mm(p.probe.radius_mm, spacing_mm) for p in placements)
    return Grid.around(points, max(margin, largest + 2 * spacing_mm), spacing_mm)


def isotherm_chart(
    placements: Sequence[ProbePlacement],
    medium: Tissue,
    protocol: Protocol,
    *,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    grid_mm: float = 1.0,
    initial_temp_c: float | None = None,
    probe_surface_temp_c: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Simulate `protocol` in `medium` and measure each isotherm at the end of it.

    Returns the ``cryoplan isotherms`` document: per isotherm ``length_mm`` (along the probe axis),
    ``width_mm`` (largest extent perpendicular to it), ``depth_mm`` (perpendicular to both) and
    ``volume_ml``, from the final temperature field.
    """
    if not (math.isfinite(grid_mm) and 0.1 <= grid_mm <= 5.0):
        raise InputError("grid_mm", "a grid spacing between 0.1 and 5 mm", grid_mm)
    grid = chart_grid(placements, medium, protocol, grid_mm)
    result = simulate(
        grid,
        placements,
        protocol,
        tissues=medium,
        isotherms_c=isotherms_c,
        initial_temp_c=initial_temp_c,
        probe_surface_temp_c=probe_surface_temp_c,
        progress=progress,
    )
    rows = []
    for temperature in isotherms_c:
        length, width, depth = result.extents_mm(temperature, PROBE_AXIS, which="final")
        rows.append(
            {
                "temperature_c": float(temperature),
                "length_mm": round(length, 2),
                "width_mm": round(width, 2),
                "depth_mm": round(depth, 2),
                "volume_ml": round(result.isotherm_volume_ml(temperature, which="final"), 3),
            }
        )
    return {
        "schema_version": 1,
        "isotherms": rows,
        "grid_mm": grid_mm,
        "grid_shape": list(grid.shape),
        "elapsed_s": round(result.elapsed_s, 3),
    }
