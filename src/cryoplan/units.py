"""Laboratory quantities and their unit conversions.

Each analyte has one canonical unit, the one the clinical scores are defined in (bilirubin, creatinine in
mg/dL; albumin in g/dL; platelets in 10^9/L; sodium in mmol/L), and the conventional and SI units a case
file may use. A value always travels with its unit: there is no default unit.

Conversion factors: bilirubin 17.1 µmol/L per mg/dL (molar mass 584.7 g/mol); creatinine 88.4 µmol/L per
mg/dL (113.1 g/mol); albumin 10 g/L per g/dL; platelets 1000 /µL per 10^9/L; sodium, monovalent, has
mEq/L = mmol/L.

Converted values are rounded to 12 significant digits, so that an SI value that is exactly a cut-off in
conventional units lands on it (51.3 µmol/L is 3.0 mg/dL, not 2.9999999999999996). The rounding is
monotone, so it never reorders two values.
"""

from __future__ import annotations

from types import MappingProxyType

#: Units accepted per analyte, as the factor that turns a value in that unit into the canonical unit.
#: The first unit of each analyte is its canonical unit.
UNIT_FACTORS = MappingProxyType(
    {
        "bilirubin": MappingProxyType({"mg/dL": 1.0, "umol/L": 1 / 17.1}),
        "albumin": MappingProxyType({"g/dL": 1.0, "g/L": 1 / 10}),
        "creatinine": MappingProxyType({"mg/dL": 1.0, "umol/L": 1 / 88.4}),
        "platelets": MappingProxyType({"10^9/L": 1.0, "/uL": 1 / 1000}),
        "sodium": MappingProxyType({"mmol/L": 1.0, "mEq/L": 1.0}),
    }
)

# Other spellings of the same units: the micro sign and Greek mu, and UCUM codes as FHIR sends them.
_SPELLINGS = {
    "µmol/l": "umol/L",
    "μmol/l": "umol/L",
    "/µl": "/uL",
    "/μl": "/uL",
    "10*9/l": "10^9/L",
    "10*3/ul": "10^9/L",
    "10^3/ul": "10^9/L",
    "10*3/µl": "10^9/L",
    "10^3/µl": "10^9/L",
}


def canonical_unit(analyte: str) -> str:
    """The unit the clinical scores use for `analyte` (e.g. ``"mg/dL"`` for bilirubin)."""
    return next(iter(UNIT_FACTORS[analyte]))


def accepted_units(analyte: str) -> tuple[str, ...]:
    """The units a case file may give `analyte` in, canonical first."""
    return tuple(UNIT_FACTORS[analyte])


def normalise_unit(analyte: str, unit: object) -> str:
    """Return the accepted spelling of `unit` for `analyte`.

    Matching ignores letter case and accepts µ (micro sign or Greek mu) for u and UCUM codes
    (``10*9/L``, ``10*3/uL``).

    Raises
    ------
    ValueError
        When `unit` is not a string or not a unit of `analyte`; the message lists the accepted units.
    """
    expected = f"one of {', '.join(accepted_units(analyte))}"
    if not isinstance(unit, str):
        raise ValueError(expected)
    key = unit.strip().casefold()
    for known in UNIT_FACTORS[analyte]:
        if key == known.casefold():
            return known
    spelled = _SPELLINGS.get(key)
    if spelled in UNIT_FACTORS[analyte]:
        return spelled
    raise ValueError(expected)


def convert(analyte: str, value: float, unit: str, to_unit: str) -> float:
    """Convert `value` of `analyte` from `unit` to `to_unit` (both accepted units of the analyte).

    Examples
    --------
    >>> convert("bilirubin", 51.3, "umol/L", "mg/dL")
    3.0
    >>> convert("albumin", 3.5, "g/dL", "g/L")
    35.0
    """
    factors = UNIT_FACTORS[analyte]
    if unit == to_unit:
        return float(value)
    return float(f"{value * factors[unit] / factors[to_unit]:.12g}")
