"""The cryoprobe library, its cooling model, and probe placements.

A probe is a needle of outer diameter `diameter_mm` whose active zone (a segment of `active_length_mm`
ending `tip_offset_mm` behind the tip) removes heat; up to `working_length_mm` of it may lie in the patient.
The returning gas leaves the expansion chamber through the shaft and cools it over a further
`proximal_cooled_length_mm` of the family before the vacuum insulation takes over: the segment that draws
heat (`ProbePlacement.active_segment_mm`, `ProbeType.cooled_length_mm`) is the nominal active zone and that
length of shaft behind it. Ice balls of argon probes reach further back along the shaft than the nominal
active zone for this reason; the length is a family parameter fitted with h.

Cooling model: a convective (Robin) condition on the outer surface of the active zone,

    q' = 2π r_p h f (T_s − T_c)     per metre of active zone,

with T_c the temperature of the boiling cryogen inside the probe (argon expanded through a Joule–Thomson
orifice boils at about −186 °C at the return pressure of one atmosphere), h the heat-transfer coefficient
from the surface to the cryogen, r_p the probe's physical radius, T_s its surface temperature and f the
flow fraction (duty cycle) of the gas, which scales the time-averaged cooling. T_c and h belong to a probe
*family* (one cryogen, one gas circuit design) and are shared by its members, so the probe types differ
only by what physically distinguishes them: diameter and active length. Under a heat load the surface
warms (T_s rises with q'), so a probe makes less ice in a warm or perfused medium, and probes near one
another share the heat load and shield each other. A fixed surface temperature cannot do either; a
capacity-limited sink (a maximum q' per metre) would add a parameter that the published sizes do not
separate from h. h is fitted to published ice-ball sizes by `cryoplan.thermal.calibration`, which writes
it with its uncertainty to ``data/calibration.yaml``.

References
----------
J. Etheridge, L. Hasselbring, J. Bischof, et al., J Biomech Eng 2013;135:021003 (a Joule–Thomson cryoprobe's
finite cooling capacity; a convective boundary with a cryogen temperature and heat-transfer coefficient).
M. Sprenkle, et al., J Endourol 2010;24:1087 (probe cooling falls under a heat load).
P. J. Littrup, B. Jallad, P. Vorugu, et al., J Vasc Interv Radiol 2009;20:1343 (probe types and heat load).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cryoplan.errors import InputError

ARGON_BOILING_C = -185.8
"""Boiling point of argon at one atmosphere (°C): the cryogen temperature inside an argon probe's tip."""


class CoolingFamily(BaseModel):
    """The cooling shared by a family of probes (one cryogen, one gas circuit design).

    Parameters
    ----------
    id : str
    cryogen : str
    cryogen_temperature_c : float
        Temperature of the boiling cryogen in the active zone (T_c), above absolute zero and below 0 °C.
    heat_transfer_w_m2k : float
        Heat-transfer coefficient from the probe's outer surface to the cryogen at full flow (h).
    heat_transfer_sd_w_m2k : float
        Its standard deviation from the calibration (0 when not calibrated).
    proximal_cooled_length_mm : float
        Length of shaft behind the active zone that the returning gas cools as the active zone is cooled
        (0 … 30 mm).
    proximal_cooled_length_sd_mm : float
        Its standard deviation from the calibration.
    source : str
        Where the values come from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    cryogen: str
    cryogen_temperature_c: float = Field(gt=-273.15, lt=0.0)
    heat_transfer_w_m2k: float = Field(gt=0.0, le=1.0e6)
    heat_transfer_sd_w_m2k: float = Field(0.0, ge=0.0)
    proximal_cooled_length_mm: float = Field(0.0, ge=0.0, le=30.0)
    proximal_cooled_length_sd_mm: float = Field(0.0, ge=0.0)
    source: str = ""

    @model_validator(mode="after")
    def _finite(self) -> CoolingFamily:
        values = (
            self.heat_transfer_w_m2k,
            self.heat_transfer_sd_w_m2k,
            self.proximal_cooled_length_mm,
            self.proximal_cooled_length_sd_mm,
        )
        if not all(math.isfinite(v) for v in values):
            raise ValueError("heat_transfer_w_m2k, proximal_cooled_length_mm and their sd must be finite")
        return self


class ProbeType(BaseModel):
    """A cryoprobe type.

    Parameters
    ----------
    id : str
        Library key.
    family : str
        Key of the cooling family (`FAMILIES`) whose cryogen temperature and heat-transfer coefficient it uses.
    diameter_mm : float
        Outer diameter of the needle (0.5 … 10 mm).
    active_length_mm : float
        Length of the cooled segment (up to 100 mm, and no longer than the working length).
    tip_offset_mm : float
        Distance from the needle's tip back to the distal end of the active segment (0 … 30 mm).
    working_length_mm : float
        Length of shaft that may lie in the patient, tip to handle (20 … 400 mm): the longest path a plan
        may give this probe.
    description : str
    source : str
        The product class its geometry comes from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    family: str = "argon"
    diameter_mm: float = Field(ge=0.5, le=10.0)
    active_length_mm: float = Field(gt=0.0, le=100.0)
    tip_offset_mm: float = Field(ge=0.0, le=30.0)
    working_length_mm: float = Field(ge=20.0, le=400.0)
    description: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ProbeType:
        values = (self.diameter_mm, self.active_length_mm, self.tip_offset_mm, self.working_length_mm)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("every dimension must be finite")
        if self.tip_offset_mm + self.active_length_mm > self.working_length_mm:
            raise ValueError("tip_offset_mm + active_length_mm must fit within working_length_mm")
        return self

    @property
    def radius_mm(self) -> float:
        return 0.5 * self.diameter_mm

    @property
    def cooling(self) -> CoolingFamily:
        return get_family(self.family)

    @property
    def cooled_length_mm(self) -> float:
        """The active zone and the shaft behind it that the returning gas cools (`CoolingFamily`)."""
        return self.active_length_mm + self.cooling.proximal_cooled_length_mm

    def film_conductance_w_mk(self, flow_fraction: float = 1.0) -> float:
        """2π r_p h f: the heat drawn per metre of active zone per kelvin between surface and cryogen."""
        return 2.0 * math.pi * self.radius_mm * 1e-3 * self.cooling.heat_transfer_w_m2k * flow_fraction


def _data_text(name: str) -> str:
    return resources.files("cryoplan.thermal").joinpath(f"data/{name}").read_text(encoding="utf-8")


def _validated(model: type[BaseModel], entry: Any, field: str) -> Any:
    if not isinstance(entry, dict):
        raise InputError(field, "a mapping of probe properties", type(entry).__name__)
    try:
        return model.model_validate(entry)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(
            f"{field}.{where}" if where else field, first["msg"].removeprefix("Value error, "), first.get("input")
        ) from None


def _load_families() -> dict[str, CoolingFamily]:
    document = yaml.safe_load(_data_text("calibration.yaml"))
    return {
        entry["id"]: CoolingFamily.model_validate(entry)
        for entry in document["families"]  # written by cryoplan.thermal.calibration
    }


FAMILIES: dict[str, CoolingFamily] = _load_families()
PROBES: dict[str, ProbeType] = {
    entry["id"]: ProbeType.model_validate(entry) for entry in yaml.safe_load(_data_text("probes.yaml"))
}


def get_family(family_id: str, field: str = "family") -> CoolingFamily:
    """The cooling family `family_id`; `InputError` naming `field` when there is none."""
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise InputError(field, f"a probe family, one of {', '.join(FAMILIES)}", family_id) from None


@contextlib.contextmanager
def family_parameters(family_id: str, **values: float) -> Iterator[CoolingFamily]:
    """Within the block, the family `family_id` has the cooling `values` (e.g. ``heat_transfer_w_m2k``,
    ``proximal_cooled_length_mm``), validated: for a calibration's trial parameters or one Monte Carlo
    sample of the fitted ones (`cryoplan.thermal.calibration.parameter_distribution`). Not thread-safe:
    the library is one per process.

    Examples
    --------
    >>> with family_parameters("argon", heat_transfer_w_m2k=1500.0) as family:
    ...     PROBES["2.4mm"].cooling.heat_transfer_w_m2k
    1500.0
    """
    original = get_family(family_id)
    changed = _validated(CoolingFamily, original.model_dump() | values, f"family {family_id}")
    FAMILIES[family_id] = changed
    try:
        yield changed
    finally:
        FAMILIES[family_id] = original


def get_probe(probe_id: str, field: str = "probe") -> ProbeType:
    """The library probe `probe_id`; `InputError` naming `field` when there is none."""
    try:
        return PROBES[probe_id]
    except KeyError:
        raise InputError(field, f"a probe id, one of {', '.join(PROBES)}", probe_id) from None


def load_probe_file(path: str | Path) -> list[ProbeType]:
    """Read user probe types from a YAML file and add them to the library (`PROBES`).

    The file holds a list of probe types with the keys of `ProbeType` (``id``, ``diameter_mm``,
    ``active_length_mm``, ``tip_offset_mm``, ``working_length_mm``, optional ``family``, ``description``,
    ``source``). Their cooling is their family's: a user file describes geometry, not new physics.

    Raises
    ------
    InputError
        Naming the entry and key (``probe_file[0].diameter_mm``) for a missing file, invalid YAML, an unknown
        key, a non-physical value (a diameter outside 0.5 … 10 mm, a negative length, an active zone longer
        than the working length), an unknown family, or an id that is already in the library.
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        raise InputError("probe_file", "an existing .yaml file of probe types", str(path))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InputError(f"probe_file ({path.name})", "valid YAML", str(error).splitlines()[0]) from None
    if not isinstance(document, list) or not document:
        raise InputError("probe_file", "a non-empty list of probe types", type(document).__name__)
    loaded = []
    for n, entry in enumerate(document):
        probe = _validated(ProbeType, entry, f"probe_file[{n}]")
        get_family(probe.family, field=f"probe_file[{n}].family")
        if probe.id in PROBES and PROBES[probe.id] != probe:
            raise InputError(f"probe_file[{n}].id", "an id not already in the library", probe.id)
        loaded.append(probe)
    for probe in loaded:
        PROBES[probe.id] = probe
    return loaded


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
        """LPS end points (distal, proximal) of the segment that draws heat: the nominal active zone and the
        family's cooled length of shaft behind it (`ProbeType.cooled_length_mm`)."""
        probe = self.probe
        distal = self.tip_mm - self.direction * probe.tip_offset_mm
        return distal, distal - self.direction * probe.cooled_length_mm

    def active_zone_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS end points (distal, proximal) of the product's nominal active zone (`ProbeType.active_length_mm`),
        the zone that spacing rules and depths are stated for; the shaft it cools lies behind it."""
        probe = self.probe
        distal = self.tip_mm - self.direction * probe.tip_offset_mm
        return distal, distal - self.direction * probe.active_length_mm


def segment_distance_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Smallest distance between the segments p0–p1 and q0–q1.

    The closest points minimise |p0 + s·u − q0 − t·v|² over s, t ∈ [0, 1]: the unconstrained minimum
    is clamped to the square, each parameter re-optimised given the other (Ericson, *Real-Time Collision
    Detection*, Morgan Kaufmann 2005, §5.1.9; Lumelsky, Inf Process Lett 1985;21:55–61).
    """
    u, v, w = p1 - p0, q1 - q0, p0 - q0
    a, b, c, d, e = u @ u, u @ v, v @ v, u @ w, v @ w
    denominator = a * c - b * b
    # Parallel (or degenerate) segments: any s works; take the start of the first.
    s = float(np.clip((b * e - c * d) / denominator, 0.0, 1.0)) if denominator > 1e-12 * a * c else 0.0
    t = (b * s + e) / c if c > 0 else 0.0
    if c == 0 or not 0.0 <= t <= 1.0:
        t = float(np.clip(t, 0.0, 1.0))
        s = float(np.clip((b * t - d) / a, 0.0, 1.0)) if a > 0 else 0.0
    return float(np.linalg.norm(w + s * u - t * v))


def probes_too_close(placements: Sequence[ProbePlacement]) -> tuple[int, int, float] | None:
    """The first pair (n, m, gap in mm; m < n) of probes whose shafts, from the tip to the proximal end of the
    segment that draws heat, come closer than the sum of their radii (one needle through another), or None."""
    for n in range(len(placements)):
        for m in range(n):
            a, b = placements[n], placements[m]
            gap = segment_distance_mm(a.tip_mm, a.active_segment_mm()[1], b.tip_mm, b.active_segment_mm()[1])
            if gap < a.probe.radius_mm + b.probe.radius_mm:
                return n, m, gap
    return None
