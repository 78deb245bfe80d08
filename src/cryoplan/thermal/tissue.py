"""Thermal properties of tissues and phantoms, and the enthalpy–temperature relation of a medium.

Liver: the baseline of Micromachines 2025;16:1321, with its in vivo perfusion from the calibration; other
organs from the IT'IS database's averages (`organ`), their perfusion replaced by the calibration's where a
measured ice size constrains it (lung, kidney). A medium file (YAML) overrides any of them; keys left out keep
the liver's values.

The IT'IS perfusions are organ blood flows; the effective perfusion of the Pennes term around a freezing probe
is not measured directly, so the calibration fits liver's within 3e-4 … 2e-2 1/s (below the modelling
baseline of 5e-4 1/s to above the IT'IS value, `ITIS_LIVER_PERFUSION_1_S`) and ties kidney's to it by the ratio
of the two organs' perfusion.

References
----------
P. A. Hasgall, F. Di Gennaro, C. Baumgartner, E. Neufeld, B. Lloyd, M. C. Gosselin, D. Payne, A. Klingenböck,
N. Kuster, IT'IS Database for thermal and electromagnetic parameters of biological tissues, version 4.1,
22 February 2022, doi:10.13099/VIP21000-04-1 (conductivity, density, heat capacity, perfusion).
F. A. Duck, Physical Properties of Tissue, Academic Press 1990 (water content).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray
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

    def enthalpy_j_m3(self, temperature_c: ArrayLike) -> NDArray[np.float64]:
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

    def conductivity_w_mk(self, temperature_c: ArrayLike) -> NDArray[np.float64] | np.float64:
        """k(T): frozen below the solidus, unfrozen above the liquidus, linear in between."""
        t = np.asarray(temperature_c, dtype=np.float64)
        span = self.liquidus_c - self.solidus_c
        fraction = np.clip((t - self.solidus_c) / span, 0, 1) if span > 0 else (t > self.solidus_c).astype(float)
        return self.conductivity_frozen_w_mk + fraction * (
            self.conductivity_unfrozen_w_mk - self.conductivity_frozen_w_mk
        )

    def kirchhoff_w_m(self, temperature_c: ArrayLike, reference_c: float) -> NDArray[np.float64] | np.float64:
        """Kirchhoff transform Φ(T) = ∫ k dT from `reference_c` to T (W/m), exact for the k(T) above."""
        t = np.asarray(temperature_c, dtype=np.float64)
        return _kirchhoff_from_solidus(self, t) - _kirchhoff_from_solidus(self, np.float64(reference_c))


def _kirchhoff_from_solidus(tissue: Tissue, t: NDArray[np.float64] | np.float64) -> NDArray[np.float64] | np.float64:
    ks, ku = tissue.conductivity_frozen_w_mk, tissue.conductivity_unfrozen_w_mk
    ts, tl = tissue.solidus_c, tissue.liquidus_c
    below = ks * (np.minimum(t, ts) - ts)
    within = np.clip(t, ts, tl) - ts
    span = tl - ts
    mushy = ks * within + (0.5 * (ku - ks) * within**2 / span if span > 0 else 0.0)
    above = ku * (np.maximum(t, tl) - tl)
    return below + mushy + above


WATER_HEAT_CAPACITY_J_M3K = 4.18e6
ICE_HEAT_CAPACITY_J_M3K = 917.0 * 2100.0
WATER_CONDUCTIVITY_W_MK = 0.60
ICE_CONDUCTIVITY_W_MK = 2.22
WATER_LATENT_HEAT_J_M3 = 334.0e6


def ml_min_kg_to_1_s(perfusion_ml_min_kg: float, density_kg_m3: float) -> float:
    """Blood perfusion from ml/min per kg of tissue (the unit of tissue-property tables) to ω_b in 1/s."""
    return perfusion_ml_min_kg * 1e-6 / 60.0 * density_kg_m3


def organ(
    name: str,
    conductivity_w_mk: float,
    density_kg_m3: float,
    specific_heat_j_kgk: float,
    water_mass_fraction: float,
    perfusion_ml_min_kg: float,
) -> Tissue:
    """An unfrozen tissue's tabulated properties, with frozen ones from its water content.

    Freezing turns the tissue's water (volume fraction φ = water mass fraction × ρ / 1000 kg/m³) into ice:
    the frozen tissue gains φ (k_ice − k_water) in conductivity (a parallel mixture), loses
    φ (C_water − C_ice) in volumetric heat capacity, and the latent heat is φ × 334 MJ/m³. The phase change
    spans −8 … −1 °C as in liver; metabolic heat is left out (it matters only in liver's steady state).

    References
    ----------
    F. A. Duck, Physical Properties of Tissue, Academic Press 1990 (water content; properties of ice and water).
    P. A. Hasgall, et al., IT'IS Database for thermal and electromagnetic parameters of biological tissues,
    version 4.1, 2022, doi:10.13099/VIP21000-04-1 (conductivity, density, heat capacity, perfusion).
    """
    water = water_mass_fraction * density_kg_m3 / 1000.0
    unfrozen_c = density_kg_m3 * specific_heat_j_kgk
    frozen_c = unfrozen_c - water * (WATER_HEAT_CAPACITY_J_M3K - ICE_HEAT_CAPACITY_J_M3K)
    return Tissue(
        name=name,
        conductivity_unfrozen_w_mk=conductivity_w_mk,
        conductivity_frozen_w_mk=conductivity_w_mk + water * (ICE_CONDUCTIVITY_W_MK - WATER_CONDUCTIVITY_W_MK),
        density_unfrozen_kg_m3=density_kg_m3,
        density_frozen_kg_m3=density_kg_m3,
        specific_heat_unfrozen_j_kgk=specific_heat_j_kgk,
        specific_heat_frozen_j_kgk=frozen_c / density_kg_m3,
        latent_heat_j_m3=water * WATER_LATENT_HEAT_J_M3,
        perfusion_1_s=ml_min_kg_to_1_s(perfusion_ml_min_kg, density_kg_m3),
        metabolic_heat_w_m3=0.0,
    )


def _calibrated_perfusion() -> dict[str, float]:
    """In vivo perfusion (1/s) fitted by `cryoplan.thermal.calibration` to published ice sizes, by medium."""
    text = resources.files("cryoplan.thermal").joinpath("data/calibration.yaml").read_text(encoding="utf-8")
    media = (yaml.safe_load(text) or {}).get("media", {})
    return {name: float(entry["perfusion_1_s"]) for name, entry in media.items() if "perfusion_1_s" in entry}


CALIBRATED_PERFUSION_1_S = _calibrated_perfusion()

ITIS_LIVER = (0.52, 1079.0, 3540.0, 860.0)
"""Liver in the IT'IS database v4.1: conductivity W/m·K, density kg/m³, specific heat J/kg·K, perfusion
ml/min/kg. Not the planning liver (the modelling baseline is): the upper end of the perfusion range."""
ITIS_LIVER_PERFUSION_1_S = ml_min_kg_to_1_s(ITIS_LIVER[3], ITIS_LIVER[1])

BASELINE_LIVER = Tissue()
"""Liver with the modelling baseline (Micromachines 2025;16:1321): ω_b = 5e-4 1/s."""

LIVER = BASELINE_LIVER.replace(perfusion_1_s=CALIBRATED_PERFUSION_1_S.get("liver", BASELINE_LIVER.perfusion_1_s))
"""In vivo liver: the baseline with the perfusion fitted to in vivo ice sizes (data/calibration.yaml)."""

_ORGANS = {
    # name: conductivity W/m·K, density kg/m³, specific heat J/kg·K, water mass fraction, perfusion ml/min/kg
    # (IT'IS database v4.1 averages: lung inflated, bone cortical, "blood vessel wall"; water from Duck 1990).
    "fat": (0.21, 911.0, 2348.0, 0.20, 33.0),
    "muscle": (0.49, 1090.0, 3421.0, 0.75, 37.0),
    "kidney": (0.53, 1066.0, 3763.0, 0.78, 3795.0),
    "lung": (0.39, 394.0, 3886.0, 0.80, 401.0),
    "bone": (0.32, 1908.0, 1313.0, 0.12, 10.0),
    "vessel_wall": (0.46, 1102.0, 3306.0, 0.70, 150.0),
}

TISSUES: dict[str, Tissue] = {
    "liver": LIVER,
    "liver_baseline": BASELINE_LIVER.replace(name="liver_baseline"),
    # No separate tumour values are tabulated: the liver's are used.
    "tumour": LIVER.replace(name="tumour"),
    # Water-like gel phantom: no perfusion, no metabolism, phase change near 0 °C.
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
    # Flowing blood: the properties used inside vessel lumens (k_blood ≈ 0.52 W/m·K).
    "blood": BASELINE_LIVER.replace(
        name="blood", conductivity_unfrozen_w_mk=0.52, perfusion_1_s=0.0, metabolic_heat_w_m3=0.0
    ),
}
for _name, _values in _ORGANS.items():
    _tissue = organ(_name, *_values)
    if _name in CALIBRATED_PERFUSION_1_S:
        _tissue = _tissue.replace(perfusion_1_s=CALIBRATED_PERFUSION_1_S[_name])
    TISSUES[_name] = _tissue

# The medium-file contract: nested YAML keys → Tissue fields.
_MEDIUM_KEYS: dict[str, Any] = {
    "name": "name",
    "conductivity_w_mk": {"unfrozen": "conductivity_unfrozen_w_mk", "frozen": "conductivity_frozen_w_mk"},
    "density_kg_m3": {"unfrozen": "density_unfrozen_kg_m3", "frozen": "density_frozen_kg_m3"},
    "specific_heat_j_kgk": {"unfrozen": "specific_heat_unfrozen_j_kgk", "frozen": "specific_heat_frozen_j_kgk"},
    "latent_heat_j_m3": "latent_heat_j_m3",
    "phase_change_c": {"solidus": "solidus_c", "liquidus": "liquidus_c"},
    "perfusion_1_s": "perfusion_1_s",
    "perfusion_ml_min_kg": "perfusion_ml_min_kg",
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
        if key in ("perfusion", "blood_perfusion", "perfusion_rate"):
            raise InputError(
                f"{field}.{key}", "a perfusion with its unit in the key: perfusion_1_s or perfusion_ml_min_kg", value
            )
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
    if "perfusion_ml_min_kg" in changes:
        if "perfusion_1_s" in changes:
            raise InputError(f"{field}.perfusion_ml_min_kg", "one perfusion, in 1/s or in ml/min/kg, not both")
        per_kg = changes.pop("perfusion_ml_min_kg")
        density = changes.get("density_unfrozen_kg_m3", LIVER.density_unfrozen_kg_m3)
        if (
            not isinstance(per_kg, int | float)
            or isinstance(per_kg, bool)
            or not (math.isfinite(per_kg) and per_kg >= 0)
        ):
            raise InputError(f"{field}.perfusion_ml_min_kg", "a finite perfusion ≥ 0 in ml/min per kg", per_kg)
        if not isinstance(density, int | float) or not (math.isfinite(density) and density > 0):
            raise InputError(f"{field}.density_kg_m3.unfrozen", "a positive density in kg/m³", density)
        changes["perfusion_1_s"] = ml_min_kg_to_1_s(float(per_kg), float(density))
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
        A key of `TISSUES`, a path to a medium YAML file (keys as in `medium_from_mapping`), or the parsed
        mapping.

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
