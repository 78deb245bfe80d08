"""Isotherm charts: the minimum temperature around one probe in homogeneous liver, simulated once per probe
and protocol and cached, and the exponent that combines several probes' cooling."""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

import cryoplan.thermal as thermal
from cryoplan.output import atomic_path
from cryoplan.thermal import TISSUES, Grid, ProbePlacement, get_probe, parse_protocol, simulate


@dataclass(frozen=True)
class IsothermChart:
    """Minimum temperature around one probe in homogeneous liver, by radial distance from the probe's
    axis and axial position from the centre of its active zone (positive towards the tip), and the
    exponent that combines several probes' cooling (fitted on a simulated pair)."""

    probe_id: str
    freeze_minutes: float
    radial_mm: np.ndarray
    axial_mm: np.ndarray
    min_temperature_c: np.ndarray  # (radial, axial)
    combination_exponent: float = math.inf

    @property
    def far_field_c(self) -> float:
        return float(self.min_temperature_c.max())

    def cooling(self, radial_mm: np.ndarray, axial_mm: np.ndarray) -> np.ndarray:
        """Drop of the minimum temperature below the far field caused by one probe (K)."""
        interpolate = RegularGridInterpolator(
            (self.radial_mm, self.axial_mm), self.min_temperature_c, bounds_error=False, fill_value=self.far_field_c
        )
        cooling: np.ndarray = self.far_field_c - interpolate(np.stack([radial_mm, axial_mm], axis=-1))
        return cooling

    def combine(self, coolings: list[np.ndarray], exponent: float | None = None) -> np.ndarray:
        """Minimum temperature under several probes: the far field less the p-norm of their coolings
        (p = ∞: the coldest probe alone; p = 1: linear superposition)."""
        p = self.combination_exponent if exponent is None else exponent
        # Interpolation can leave a cooling a rounding error below zero; a fractional power of it is NaN.
        stacked = np.clip(np.stack(coolings), 0.0, None)
        total = stacked.max(axis=0) if math.isinf(p) else np.sum(stacked**p, axis=0) ** (1.0 / p)
        combined: np.ndarray = self.far_field_c - total
        return combined


PAIR_SPACING_MM = 15.0
COMBINATION_EXPONENTS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, math.inf)


def chart_cache_dir() -> Path:
    """Where isotherm charts are kept between runs: $CRYOPLAN_CACHE_DIR, else ~/.cache/cryoplan."""
    configured = os.environ.get("CRYOPLAN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "cryoplan"


def _engine_fingerprint() -> str:
    """Hash of the thermal engine's source and probe library: a changed engine never reuses old charts."""
    digest = hashlib.sha256()
    folder = Path(thermal.__file__).parent
    for path in sorted([*folder.glob("*.py"), *folder.glob("data/*")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=32)
def isotherm_chart(probe_id: str, protocol_text: str, grid_mm: float) -> IsothermChart:
    """Simulate one probe (along +z) in homogeneous liver and tabulate its minimum temperature; then
    simulate two probes 15 mm apart and fit the exponent that combines probes (the one whose estimate
    best reproduces the pair's 0, −20 and −40 °C volumes).

    The chart does not depend on the patient: it is cached in memory and on disk (`chart_cache_dir`),
    keyed by the probe, protocol, spacing and the engine's fingerprint.
    """
    key = hashlib.sha256(f"{probe_id}|{protocol_text}|{grid_mm}|{_engine_fingerprint()}".encode()).hexdigest()[:24]
    path = chart_cache_dir() / f"chart-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return IsothermChart(
                probe_id,
                float(stored["freeze_minutes"]),
                stored["radial_mm"],
                stored["axial_mm"],
                stored["min_temperature_c"],
                float(stored["combination_exponent"]),
            )
    chart = _simulate_chart(probe_id, protocol_text, grid_mm)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    freeze_minutes=chart.freeze_minutes,
                    radial_mm=chart.radial_mm,
                    axial_mm=chart.axial_mm,
                    min_temperature_c=chart.min_temperature_c,
                    combination_exponent=chart.combination_exponent,
                )
    except OSError:
        pass  # a read-only home only costs the next run a recomputation
    return chart


def _simulate_chart(probe_id: str, protocol_text: str, grid_mm: float) -> IsothermChart:
    probe = get_probe(probe_id)
    protocol = parse_protocol(protocol_text)
    reach_mm = 30.0
    direction = np.array([0.0, 0.0, 1.0])
    to_tip = direction * (probe.active_length_mm / 2 + probe.tip_offset_mm)
    half_length = probe.active_length_mm / 2 + reach_mm
    grid = Grid.around(np.array([[0.0, 0.0, -half_length], [0.0, 0.0, half_length]]), reach_mm, grid_mm)
    result = simulate(grid, [ProbePlacement(probe_id, to_tip, direction)], protocol, tissues=TISSUES["liver"])
    # Average over azimuth: rays in eight directions around the axis.
    radial = np.arange(0.0, reach_mm, grid_mm / 2)
    axial = grid.axis_mm(2)
    values = []
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        points: np.ndarray = np.zeros((radial.size, axial.size, 3))
        points[..., 0] = radial[:, None] * np.cos(angle)
        points[..., 1] = radial[:, None] * np.sin(angle)
        points[..., 2] = axial[None, :]
        index = np.moveaxis(grid.index_of(points), -1, 0)
        values.append(ndimage.map_coordinates(result.min_temperature_c, index, order=1, mode="nearest"))
    chart = IsothermChart(probe_id, float(protocol.phases[0].minutes), radial, axial, np.mean(values, axis=0))
    # The pair: centres of the active zones at (±7.5, 0, 0).
    centres = np.array([[-PAIR_SPACING_MM / 2, 0, 0], [PAIR_SPACING_MM / 2, 0, 0]])
    pair_grid = Grid.around(
        np.vstack([centres - [0, 0, half_length], centres + [0, 0, half_length]]), reach_mm, grid_mm
    )
    pair = simulate(
        pair_grid,
        [ProbePlacement(probe_id, c + to_tip, direction) for c in centres],
        protocol,
        tissues=TISSUES["liver"],
    )
    points = pair_grid.centres_mm().reshape(-1, 3)
    coolings = [chart.cooling(np.linalg.norm((points - c)[:, :2], axis=1), (points - c)[:, 2]) for c in centres]
    simulated = pair.min_temperature_c.reshape(-1)
    errors = []
    for exponent in COMBINATION_EXPONENTS:
        estimated = chart.combine(coolings, exponent)
        errors.append(sum(abs(int(np.sum(estimated <= t)) - int(np.sum(simulated <= t))) for t in (0.0, -20.0, -40.0)))
    return replace(chart, combination_exponent=COMBINATION_EXPONENTS[int(np.argmin(errors))])
