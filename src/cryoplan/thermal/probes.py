"""The cryoprobe library and probe placements.

Each probe is a needle whose active zone (a segment of `active_length_mm` ending `tip_offset_mm` behind the
tip) removes heat; the shaft behind it is insulated. On the grid the needle is a sub-grid line sink (see
`cryoplan.thermal.solver`) tied to the freeze surface temperature (−140 °C, `FREEZE_SURFACE_C`) held on a
cylinder of `effective_radius_mm` around the active zone. That radius is the calibrated parameter: it is
fitted per probe to the measurements of physics.md §3 by `cryoplan.thermal.calibration`, which records it
and the residuals in ``data/probes.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from cryoplan.errors import InputError


class ProbeType(BaseModel):
    """A cryoprobe model.

    Parameters
    ----------
    id : str
        Library key.
    diameter_mm : float
        Outer diameter of the needle.
    active_length_mm : float
        Length of the cooled segment.
    tip_offset_mm : float
        Distance from the needle's tip back to the distal end of the active segment.
    description : str
    effective_radius_mm : float
        Calibrated radius of the cylinder held at the freeze surface temperature during a full-flow freeze.
    calibration : dict
        Which measurements the probe was calibrated on and the residuals reached.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    diameter_mm: float = Field(gt=0)
    active_length_mm: float = Field(gt=0)
    tip_offset_mm: float = Field(ge=0)
    description: str
    effective_radius_mm: float = Field(gt=0)
    calibration: dict[str, Any] = Field(default_factory=dict)

    @property
    def radius_mm(self) -> float:
        return 0.5 * self.diameter_mm


def _load_library() -> dict[str, ProbeType]:
    text = resources.files("cryoplan.thermal").joinpath("data/probes.yaml").read_text(encoding="utf-8")
    return {entry["id"]: ProbeType.model_validate(entry) for entry in yaml.safe_load(text)}


PROBES: dict[str, ProbeType] = _load_library()


def get_probe(probe_id: str, field: str = "probe") -> ProbeType:
    """The library probe `probe_id`; `InputError` naming `field` when there is none."""
    try:
        return PROBES[probe_id]
    except KeyError:
        raise InputError(field, f"a probe id, one of {', '.join(PROBES)}", probe_id) from None


@dataclass(frozen=True)
class ProbePlacement:
    """A probe placed in the patient.

    Parameters
    ----------
    probe_id : str
        Key of `PROBES`.
    tip_mm : array of 3 floats
        LPS position of the needle's tip (mm).
    direction : array of 3 floats
        Direction of insertion, from the skin entry towards the tip; normalised here.
    flow_fraction : float
        Share of full gas flow, in [0, 1], multiplying the probe's cooling during freezes.
    """

    probe_id: str
    tip_mm: np.ndarray
    direction: np.ndarray
    flow_fraction: float = 1.0

    def __post_init__(self) -> None:
        tip = np.asarray(self.tip_mm, dtype=np.float64).reshape(-1)
        direction = np.asarray(self.direction, dtype=np.float64).reshape(-1)
        if tip.shape != (3,) or not np.all(np.isfinite(tip)):
            raise InputError("probe.tip_mm", "three finite LPS coordinates in mm", self.tip_mm)
        norm = float(np.linalg.norm(direction)) if direction.shape == (3,) else 0.0
        if not (np.isfinite(norm) and norm > 0):
            raise InputError("probe.direction", "a non-zero, finite 3-vector", self.direction)
        if not (0.0 <= float(self.flow_fraction) <= 1.0):
            raise InputError("probe.flow_fraction", "a number in [0, 1]", self.flow_fraction)
        object.__setattr__(self, "tip_mm", tip)
        object.__setattr__(self, "direction", direction / norm)
        object.__setattr__(self, "flow_fraction", float(self.flow_fraction))

    @property
    def probe(self) -> ProbeType:
        return get_probe(self.probe_id)

    def active_segment_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS end points (distal, proximal) of the active zone."""
        probe = self.probe
        distal = self.tip_mm - self.direction * probe.tip_offset_mm
        return distal, distal - self.direction * probe.active_length_mm
