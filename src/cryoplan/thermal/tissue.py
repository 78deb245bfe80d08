"""Thermal properties of tissues and phantoms, and the enthalpy–temperature relation of a medium.

Baseline values are those of physics.md §2 (Micromachines 2025;16:1321 for liver). A medium file (YAML)
overrides any of them; keys left out keep the liver baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cryoplan.errors import InputError


class Tissue(BaseModel):
    """Thermal properties of one medium (SI units, temperatures in °C).

    Frozen and unfrozen values hold below the solidus and above the liquidus; between them (the mushy
    range) the latent heat is spread uniformly and the conductivity follows the liquid fraction. Equal
    solidus and liquidus give a single phase-change temperature.

    References
    ----------
    H. H. Pennes, J Appl Physiol 1948;1:93 (the perfusion term).
    V. R. Voller, C. R. Swaminathan, Numer Heat Transfer B 1991;19:175 (enthalpy formulation).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "liver"
    conductivity_unfrozen_w_mk: float = Field(0.5, gt=0)
    conductivity_frozen_w_mk: float = Field(2.0, gt=0)
    density_unfrozen_kg_m3: float = Field(1000.0, gt=0)
    density_frozen_kg_m3: float = Field(998.0, gt=0)
    specific_heat_unfrozen_j_kgk: float = Field(3600.0, gt=0)
    specific_heat_frozen_j_kgk: float = Field(1800.0, gt=0)
    latent_heat_j_m3: float = Field(250.0e6, ge=0)
    solidus_c: float = -8.0
    liquidus_c: float = -1.0
    perfusion_1_s: float = Field(5.0e-4, ge=0)
    blood_heat_capacity_j_m3k: float = Field(3.6e6, gt=0)
    arterial_temperature_c: float = 37.0
    metabolic_heat_w_m3: float = Field(4200.0, ge=0)

    @model_validator(mode="after")
    def _check_range(self) -> Tissue:
        values = [getattr(self, name) for name in type(self).model_fields if name != "name"]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("every property must be a finite number")
        if self.solidus_c > self.liquidus_c:
            raise ValueError("phase_change_c.solidus must not exceed phase_change_c.liquidus")
        return self

    def replace(self, **changes: Any) -> Tissue:
        """A copy with some properties changed (validated), for overrides and uncertainty sampling."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @property
    def heat_capacity_unfrozen_j_m3k(self) -> float:
        return self.density_unfrozen_kg_m3 * self.specific_heat_unfrozen_j_kgk

    @property
    def heat_capacity_frozen_j_m3k(self) -> float:
        return self.density_frozen_kg_m3 * self.specific_heat_frozen_j_kgk

    @property
    def perfusion_w_m3k(self) -> float:
        """W = ω_b ρ_b c_b of the Pennes equation."""
        return self.perfusion_1_s * self.blood_heat_capacity_j_m3k

    @property
    def steady_temperature_c(self) -> float:
        """T_∞ = T_a + Q_m / W, the temperature perfused tissue settles at (T_a when W = 0)."""
        w = self.perfusion_w_m3k
        return self.arterial_temperature_c + (self.metabolic_heat_w_m3 / w if w > 0 else 0.0)

    @property
    def liquidus_enthalpy_j_m3(self) -> float:
        """Enthalpy at the liquidus, with the reference H = 0 at the solidus."""
        mean_c = 0.5 * (self.heat_capacity_frozen_j_m3k + self.heat_capacity_unfrozen_j_m3k)
        return self.latent_heat_j_m3 + mean_c * (self.liquidus_c - self.solidus_c)

    def enthalpy_j_m3(self, temperature_c):
        """Volumetric enthalpy H(T) (J/m³, zero at the solidus); at a single T_m returns the frozen end."""
        t = np.asarray(temperature_c, dtype=np.float64)
        h_l = self.liquidus_enthalpy_j_m3
        span = self.liquidus_c - self.solidus_c
        mushy = (t - self.solidus_c) / span * h_l if span > 0 else np.zeros_like(t)
        return np.where(
            t <= self.solidus_c,
            self.heat_capacity_frozen_j_m3k * (t - self.solidus_c),
            np.where(t >= self.liquidus_c, h_l + self.heat_capacity_unfrozen_j_m3k * (t - self.liquidus_c), mushy),
        )

    def conductivity_w_mk(self, temperature_c):
        """k(T): frozen below the solidus, unfrozen above the liquidus, linear in between."""
        t = np.asarray(temperature_c, dtype=np.float64)
        span = self.liquidus_c - self.solidus_c
        fraction = np.clip((t - self.solidus_c) / span, 0, 1) if span > 0 else (t > self.solidus_c).astype(float)
        return self.conductivity_frozen_w_mk + fraction * (
            self.conductivity_unfrozen_w_mk - self.conductivity_frozen_w_mk
        )

    def kirchhoff_w_m(self, temperature_c, reference_c: float):
        """Kirchhoff transform Φ(T) = ∫ k dT from `reference_c` to T (W/m), exact for the k(T) above."""
        t = np.asarray(temperature_c, dtype=np.float64)
        return _kirchhoff_from_solidus(self, t) - _kirchhoff_from_solidus(self, np.float64(reference_c))


def _kirchhoff_from_solidus(tissue: Tissue, t):
    ks, ku = tissue.conductivity_frozen_w_mk, tissue.conductivity_unfrozen_w_mk
    ts, tl = tissue.solidus_c, tissue.liquidus_c
    below = ks * (np.minimum(t, ts) - ts)
    within = np.clip(t, ts, tl) - ts
    span = tl - ts
    mushy = ks * within + (0.5 * (ku - ks) * within**2 / span if span > 0 else 0.0)
    above = ku * (np.maximum(t, tl) - tl)
    return below + mushy + above


LIVER = Tissue()

TISSUES: dict[str, Tissue] = {
    "liver": LIVER,
    # physics.md gives no separate tumour values; the liver baseline is used and flagged as such.
    "tumour": LIVER.replace(name="tumour"),
    # Water-like gel phantom (physics.md §2): no perfusion, no metabolism, phase change near 0 °C.
    "gel": Tissue(
        name="gel",
        conductivity_unfrozen_w_mk=0.6,
        conductivity_frozen_w_mk=2.2,
        density_unfrozen_kg_m3=1000.0,
        density_frozen_kg_m3=917.0,
        specific_heat_unfrozen_j_kgk=4180.0,
        specific_heat_frozen_j_kgk=2100.0,
        latent_heat_j_m3=334.0e6,
        solidus_c=-0.5,
        liquidus_c=0.0,
        perfusion_1_s=0.0,
        metabolic_heat_w_m3=0.0,
    ),
    # Flowing blood: the properties used inside vessel lumens (k_blood ≈ 0.52 W/m·K, physics.md §1).
    "blood": LIVER.replace(name="blood", conductivity_unfrozen_w_mk=0.52, perfusion_1_s=0.0, metabolic_heat_w_m3=0.0),
}

# The medium-file contract (issue 3): nested YAML keys → Tissue fields.
_MEDIUM_KEYS: dict[str, Any] = {
    "name": "name",
    "conductivity_w_mk": {"unfrozen": "conductivity_unfrozen_w_mk", "frozen": "conductivity_frozen_w_mk"},
    "density_kg_m3": {"unfrozen": "density_unfrozen_kg_m3", "frozen": "density_frozen_kg_m3"},
    "specific_heat_j_kgk": {"unfrozen": "specific_heat_unfrozen_j_kgk", "frozen": "specific_heat_frozen_j_kgk"},
    "latent_heat_j_m3": "latent_heat_j_m3",
    "phase_change_c": {"solidus": "solidus_c", "liquidus": "liquidus_c"},
    "perfusion_1_s": "perfusion_1_s",
    "blood_heat_capacity_j_m3k": "blood_heat_capacity_j_m3k",
    "arterial_temperature_c": "arterial_temperature_c",
    "metabolic_heat_w_m3": "metabolic_heat_w_m3",
}
_FIELD_PATHS = {
    name: f"{key}.{sub}"
    for key, target in _MEDIUM_KEYS.items()
    if isinstance(target, dict)
    for sub, name in target.items()
} | {target: key for key, target in _MEDIUM_KEYS.items() if isinstance(target, str)}


def medium_from_mapping(document: Mapping[str, Any], field: str = "medium") -> Tissue:
    """Build a `Tissue` from the medium-file mapping; keys left out keep the liver baseline.

    Raises `InputError` naming the offending key (``medium.phase_change_c.solidus``) for unknown keys and
    invalid values.
    """
    if not isinstance(document, Mapping):
        raise InputError(field, "a mapping of medium properties", type(document).__name__)
    changes: dict[str, Any] = {}
    for key, value in document.items():
        target = _MEDIUM_KEYS.get(key)
        if target is None:
            raise InputError(f"{field}.{key}", f"one of the medium keys {', '.join(_MEDIUM_KEYS)}", key)
        if isinstance(target, dict):
            if not isinstance(value, Mapping):
                raise InputError(f"{field}.{key}", f"a mapping with keys {', '.join(target)}", value)
            for sub, sub_value in value.items():
                if sub not in target:
                    raise InputError(f"{field}.{key}.{sub}", f"one of {', '.join(target)}", sub)
                changes[target[sub]] = sub_value
        else:
            changes[target] = value
    try:
        return LIVER.replace(**changes)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        path = _FIELD_PATHS.get(name, "")
        raise InputError(
            f"{field}.{path}" if path else field, first["msg"].removeprefix("Value error, "), first.get("input")
        ) from None


def load_medium(source: str | Path | Mapping[str, Any]) -> Tissue:
    """A medium by library name (``liver``, ``gel``, ...), from a YAML file, or from a mapping.

    Parameters
    ----------
    source : str, Path or mapping
        A key of `TISSUES`, a path to a medium YAML file (issue 3's contract), or the parsed mapping.

    Returns
    -------
    Tissue
    """
    if isinstance(source, Mapping):
        return medium_from_mapping(source)
    if isinstance(source, str) and source in TISSUES:
        return TISSUES[source]
    path = Path(source)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        raise InputError("medium", f"one of {', '.join(TISSUES)} or an existing .yaml file", str(source))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InputError(f"medium ({path.name})", "valid YAML", str(error).splitlines()[0]) from None
    return medium_from_mapping(document or {}, field=f"medium ({path.name})")
