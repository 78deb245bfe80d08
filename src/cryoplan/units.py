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

import math
import re
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

# UCUM (Unified Code for Units of Measure) pieces that lab units are built from: prefixes and the atoms with
# their dimension and size in base units (g, mol, one, L). An equivalent is counted as a mole: sodium is
# monovalent, the only analyte whose units allow it.
_PREFIXES = {"": 1.0, "k": 1e3, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12}
_ATOMS = {("g",): ("mass", 1.0), ("mol",): ("amount", 1.0), ("eq", "Eq"): ("amount", 1.0), ("L", "l"): ("volume", 1.0)}
_METRE3_L = 1e3  # one cubic metre is 1000 L
_TERM = re.compile(
    r"^(?:(?P<ten>10[*^](?P<exponent>[+-]?\d+))|(?P<number>\d+(?:\.\d+)?)|(?P<unit>[a-zA-Z]+)(?P<power>\d)?)$"
)


def parse_ucum(unit: str) -> tuple[tuple[str, ...], float]:
    """Parse a UCUM lab unit into its dimension and its size in base units (g, mol, L; counts are 1).

    Handles a numeric factor (``10*9``, ``10^3``, ``1000``), the prefixes k d c m u n p (µ and μ read as u),
    grams, moles, equivalents, litres (``L`` or ``l``), cubic metres with a prefix (``mm3``) and one ``/``;
    annotations in braces (``{cells}``) are ignored, as UCUM says.

    Returns
    -------
    dimension : tuple of str
        ``(numerator, denominator)`` dimensions, e.g. ``("mass", "volume")`` or ``("count", "volume")``.
    size : float
        The unit in base units (12 significant digits): ``mg/dL`` is 0.01 (g/L), ``10*3/mm3`` is 1e9 (per L).

    Raises
    ------
    ValueError
        When the text is not a unit of this form.

    References
    ----------
    Schadow G, McDonald CJ. The Unified Code for Units of Measure. Regenstrief Institute, version 2.1, 2017.

    Examples
    --------
    >>> parse_ucum("10*3/mm3")
    (('count', 'volume'), 1000000000.0)
    >>> parse_ucum("umol/L")
    (('amount', 'volume'), 1e-06)
    """
    text = re.sub(r"\{[^}]*\}", "", unit).strip().replace("µ", "u").replace("μ", "u")
    parts = text.split("/")
    if len(parts) > 2 or not text:
        raise ValueError(f"not a lab unit: {unit!r}")
    numerator, denominator = parts if len(parts) == 2 else (parts[0], None)
    top_dimension, top_size = _parse_factor_and_atom(numerator, unit)
    if denominator is None:
        return (top_dimension, ""), float(f"{top_size:.12g}")
    bottom_dimension, bottom_size = _parse_factor_and_atom(denominator, unit)
    # Rounded to 12 significant digits, so that 10*3/mm3 is exactly 1e9 per litre.
    return (top_dimension, bottom_dimension), float(f"{top_size / bottom_size:.12g}")


def _parse_factor_and_atom(term: str, unit: str) -> tuple[str, float]:
    """One side of a unit: an optional factor (``10*9``, ``1000``; ``.`` joins it to an atom) and an atom."""
    size, dimension = 1.0, "count"
    pieces = [p for p in re.split(r"(?<=\d)\.(?=[a-zA-Z])|(?<=\d)(?=[a-zA-Z])", term) if p] if term else []
    for piece in pieces:
        match = _TERM.match(piece)
        if match is None:
            raise ValueError(f"not a lab unit: {unit!r}")
        if match["ten"]:
            size *= 10.0 ** int(match["exponent"])
        elif match["number"]:
            size *= float(match["number"])
        else:
            atom_dimension, atom_size = _atom(match["unit"], match["power"], unit)
            if dimension != "count":
                raise ValueError(f"not a lab unit: {unit!r}")
            dimension, size = atom_dimension, size * atom_size
    return dimension, size


def _atom(text: str, power: str | None, unit: str) -> tuple[str, float]:
    if power is not None:  # only a volume in cubic metres takes a power (mm3, cm3)
        if power != "3" or not text.endswith("m") or text[:-1] not in _PREFIXES:
            raise ValueError(f"not a lab unit: {unit!r}")
        return "volume", _PREFIXES[text[:-1]] ** 3 * _METRE3_L
    for spellings, (dimension, size) in _ATOMS.items():
        for spelling in spellings:
            prefix = text[: -len(spelling)] if text.endswith(spelling) else None
            if prefix is not None and prefix in _PREFIXES:
                return dimension, _PREFIXES[prefix] * size
    raise ValueError(f"not a lab unit: {unit!r}")


def _same_unit(unit: str, known: str) -> bool:
    """Whether `unit` is the same quantity as the accepted unit `known` (UCUM-parsed, sizes within 1e-12)."""
    try:
        dimension, size = parse_ucum(unit)
    except ValueError:
        return False
    known_dimension, known_size = parse_ucum(known)
    return dimension == known_dimension and math.isclose(size, known_size, rel_tol=1e-12)


def canonical_unit(analyte: str) -> str:
    """The unit the clinical scores use for `analyte` (e.g. ``"mg/dL"`` for bilirubin)."""
    return next(iter(UNIT_FACTORS[analyte]))


def accepted_units(analyte: str) -> tuple[str, ...]:
    """The units a case file may give `analyte` in, canonical first."""
    return tuple(UNIT_FACTORS[analyte])


def normalise_unit(analyte: str, unit: object) -> str:
    """Return the accepted spelling of `unit` for `analyte`.

    A spelling that differs only in letter case matches; otherwise the unit is parsed as UCUM
    (`parse_ucum`) and matches an accepted unit of the same dimension and size: ``10*3/mm3``, ``10*9/L``
    and ``10*3/uL`` are all 10^9/L, ``meq/L`` is mEq/L, ``µmol/l`` is umol/L.

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
    for known in UNIT_FACTORS[analyte]:
        if _same_unit(unit, known):
            return known
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
