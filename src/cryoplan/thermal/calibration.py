"""Calibration of the probe library against the measurements of physics.md §3.

Run ``python -m cryoplan.thermal.calibration`` to refit every probe's `effective_radius_mm` (1 mm grid)
and rewrite ``data/probes.yaml`` with the fitted radius, the data each probe was fitted to, and the
residuals. Fitted:

- 17g-sphere: 0 °C ice-ball width 32 mm after a 10-min freeze in 37 °C gel (manufacturer specification,
  37 ± 4 × 32 ± 3 mm, isotherm and time not stated: physics.md §3, uncertain).
- 2.4mm: lethal (< −30 °C) ice diameter 12 mm after 15 min in agar at ≈ 39 °C (Littrup et al., JVIR
  2009;20:1343).

17g-rod and 1.7mm have no measurement of their own in physics.md: they keep the 17G needle's ratio of
effective to physical radius (same gauge class and gas), and their residual against the gel study's
"−40 °C lies ≈ 10 mm inside the 0 °C edge" (PMC4850244) is reported.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import yaml

from cryoplan.output import write_text
from cryoplan.thermal import probes as probe_library
from cryoplan.thermal.chart import PROBE_AXIS, chart_grid
from cryoplan.thermal.probes import ProbePlacement, ProbeType
from cryoplan.thermal.protocol import parse_protocol
from cryoplan.thermal.solver import simulate
from cryoplan.thermal.tissue import TISSUES

CALIBRATION_MARGIN_MM = 30.0
"""Grid margin around the probe: 1 mm-grid runs with 30 and 38 mm margins gave the same 0 °C width (28.06 mm)."""

GEL_STUDY = "PMC4850244 (17G needle, 37 °C gel, 10 min): −40 °C ≈ 10 mm inside the 0 °C edge"


def ice_figures(probe: ProbeType, minutes: float, initial_temp_c: float, grid_mm: float = 1.0) -> dict:
    """Widths (perpendicular to the needle, at the middle of the active zone) and 0 °C length of the ice
    after a single freeze of one probe in gel; from temperature profiles interpolated along rays."""
    original = probe_library.PROBES.get(probe.id)
    probe_library.PROBES[probe.id] = probe
    try:
        placement = ProbePlacement(probe.id, np.zeros(3), PROBE_AXIS)
        protocol = parse_protocol(f"freeze:{minutes:g}")
        grid = chart_grid([placement], TISSUES["gel"], protocol, grid_mm, margin_mm=CALIBRATION_MARGIN_MM)
        result = simulate(grid, [placement], protocol, tissues=TISSUES["gel"], initial_temp_c=initial_temp_c)
    finally:
        if original is None:
            del probe_library.PROBES[probe.id]
        else:
            probe_library.PROBES[probe.id] = original
    middle = np.mean(placement.active_segment_mm(), axis=0)
    widths = {}
    for t in (0.0, -20.0, -30.0, -40.0):
        radii = [result.isotherm_distance_mm(t, middle, d) for d in ([1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0])]
        widths[t] = 2.0 * float(np.mean(radii))
    length = result.isotherm_distance_mm(0.0, middle, PROBE_AXIS) + result.isotherm_distance_mm(
        0.0, middle, -PROBE_AXIS
    )
    return {
        "width_0c_mm": widths[0.0],
        "width_minus20c_mm": widths[-20.0],
        "width_minus30c_mm": widths[-30.0],
        "width_minus40c_mm": widths[-40.0],
        "length_0c_mm": float(length),
        "gap_0c_to_minus40c_mm": 0.5 * (widths[0.0] - widths[-40.0]),
    }


def fit_radius(
    probe: ProbeType,
    key: str,
    target_mm: float,
    minutes: float,
    initial_temp_c: float,
    bracket: tuple[float, float],
    tolerance_mm: float = 0.2,
    max_runs: int = 6,
) -> tuple[float, dict]:
    """Secant iteration on log(effective radius) until the simulated figure `key` is within `tolerance_mm`."""
    runs = []
    for radius in bracket:
        runs.append(
            (radius, ice_figures(probe.model_copy(update={"effective_radius_mm": radius}), minutes, initial_temp_c))
        )
        print(f"  {probe.id}: r = {radius:.3f} mm → {key} = {runs[-1][1][key]:.2f} mm", flush=True)
    while len(runs) < max_runs:
        (r0, f0), (r1, f1) = sorted(runs, key=lambda run: abs(run[1][key] - target_mm))[:2]
        if abs(f0[key] - target_mm) <= tolerance_mm or f1[key] == f0[key]:
            break
        slope = (f1[key] - f0[key]) / (math.log(r1) - math.log(r0))
        radius = float(np.clip(math.exp(math.log(r0) + (target_mm - f0[key]) / slope), 0.2, 10.0))
        runs.append(
            (radius, ice_figures(probe.model_copy(update={"effective_radius_mm": radius}), minutes, initial_temp_c))
        )
        print(f"  {probe.id}: r = {radius:.3f} mm → {key} = {runs[-1][1][key]:.2f} mm", flush=True)
    return min(runs, key=lambda run: abs(run[1][key] - target_mm))


def _rounded(figures: dict) -> dict:
    return {key: round(value, 2) for key, value in figures.items()}


def calibrate() -> list[dict]:
    """Fit the library and return its entries (as written to data/probes.yaml)."""
    library = dict(probe_library.PROBES)
    entries = []
    sphere_radius, sphere = fit_radius(library["17g-sphere"], "width_0c_mm", 32.0, 10.0, 37.0, (3.2, 3.8))
    ratio = sphere_radius / library["17g-sphere"].radius_mm
    for probe in library.values():
        if probe.id == "17g-sphere":
            radius, figures = sphere_radius, sphere
            calibration = {
                "data": "manufacturer specification, 17G spherical needle: ice ball 37 ± 4 × 32 ± 3 mm "
                "(0 °C, 10 min, 37 °C gel assumed; uncertain)",
                "fitted": "width_0c_mm = 32",
                "residual_width_0c_mm": round(figures["width_0c_mm"] - 32.0, 2),
                "residual_length_0c_mm": round(figures["length_0c_mm"] - 37.0, 2),
                "check": GEL_STUDY,
                "residual_gap_mm": round(figures["gap_0c_to_minus40c_mm"] - 10.0, 2),
            }
        elif probe.id == "2.4mm":
            radius, figures = fit_radius(probe, "width_minus30c_mm", 12.0, 15.0, 39.0, (0.6, 1.2))
            calibration = {
                "data": "Littrup et al., JVIR 2009;20:1343: one 2.4 mm probe, 15 min, agar at 39 °C: "
                "lethal ice (< −30 °C) diameter 12 mm",
                "fitted": "width_minus30c_mm = 12",
                "residual_width_minus30c_mm": round(figures["width_minus30c_mm"] - 12.0, 2),
                "check": "lethal ice < 10 mm behind the ice edge (same study)",
                "gap_0c_to_minus30c_mm": round(0.5 * (figures["width_0c_mm"] - figures["width_minus30c_mm"]), 2),
            }
        else:
            radius = ratio * probe.radius_mm
            figures = ice_figures(probe.model_copy(update={"effective_radius_mm": radius}), 10.0, 37.0)
            calibration = {
                "data": "no measurement of its own in physics.md: keeps the 17G needle's effective/physical "
                f"radius ratio {ratio:.3f}",
                "check": GEL_STUDY,
                "residual_gap_mm": round(figures["gap_0c_to_minus40c_mm"] - 10.0, 2),
            }
        calibration["simulated"] = _rounded(figures)
        calibration["grid_mm"] = 1.0
        entries.append(
            {
                **probe.model_dump(exclude={"calibration", "effective_radius_mm"}),
                "effective_radius_mm": round(radius, 3),
                "calibration": calibration,
            }
        )
        print(f"{probe.id}: effective radius {radius:.3f} mm; {calibration}", flush=True)
    return entries


HEADER = """# Cryoprobe library. Geometry from product classes (physics.md §1; gauges uncertain, from naming).
# effective_radius_mm is the calibrated sub-grid parameter: the radius of the cylinder that, held at
# −140 °C along the active zone, reproduces the measurements named in `calibration`.
# Written by `python -m cryoplan.thermal.calibration`; edit the geometry there, not the fitted numbers.
"""


def main() -> None:
    entries = calibrate()
    path = resources.files("cryoplan.thermal").joinpath("data/probes.yaml")
    text = HEADER + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=110)
    write_text(str(path), text)


if __name__ == "__main__":
    main()
