"""Lab unit spellings and conversions, pinned at the values that are cut-offs in conventional units."""

import pytest

from cryoplan import units


@pytest.mark.parametrize(
    ("analyte", "given", "accepted"),
    [
        ("bilirubin", "mg/dL", "mg/dL"),
        ("bilirubin", "mg/dl", "mg/dL"),
        ("bilirubin", "umol/L", "umol/L"),
        ("bilirubin", "µmol/L", "umol/L"),  # micro sign
        ("bilirubin", "μmol/L", "umol/L"),  # Greek mu
        ("creatinine", "umol/l", "umol/L"),
        ("albumin", "g/L", "g/L"),
        ("albumin", "G/DL", "g/dL"),
        ("platelets", "10^9/L", "10^9/L"),
        ("platelets", "10*9/L", "10^9/L"),  # UCUM
        ("platelets", "10*3/uL", "10^9/L"),  # UCUM, the same quantity
        ("platelets", "/uL", "/uL"),
        ("platelets", "/µL", "/uL"),
        ("sodium", "mmol/L", "mmol/L"),
        ("sodium", "mEq/L", "mEq/L"),
    ],
)
def test_accepted_spellings(analyte, given, accepted):
    assert units.normalise_unit(analyte, given) == accepted


@pytest.mark.parametrize(
    ("analyte", "given"),
    [
        ("bilirubin", "g/L"),
        ("albumin", "mg/dL"),
        ("creatinine", "mmol/L"),
        ("platelets", "10^3/L"),
        ("sodium", "mg/dL"),
        ("bilirubin", ""),
        ("bilirubin", None),
        ("bilirubin", 17.1),
    ],
)
def test_units_of_another_analyte_or_none_are_refused(analyte, given):
    with pytest.raises(ValueError, match="one of"):
        units.normalise_unit(analyte, given)


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "to_unit", "expected"),
    [
        ("bilirubin", 34.2, "umol/L", "mg/dL", 2.0),  # Child-Pugh cut-offs in SI land on the mg/dL bands
        ("bilirubin", 51.3, "umol/L", "mg/dL", 3.0),  # 51.3 / 17.1 is 2.9999999999999996 in floating point
        ("bilirubin", 68.4, "umol/L", "mg/dL", 4.0),
        ("bilirubin", 171.0, "umol/L", "mg/dL", 10.0),
        ("bilirubin", 1.0, "mg/dL", "umol/L", 17.1),
        ("albumin", 35.0, "g/L", "g/dL", 3.5),
        ("albumin", 28.0, "g/L", "g/dL", 2.8),
        ("albumin", 3.9, "g/dL", "g/L", 39.0),
        ("creatinine", 88.4, "umol/L", "mg/dL", 1.0),
        ("creatinine", 265.2, "umol/L", "mg/dL", 3.0),
        ("creatinine", 353.6, "umol/L", "mg/dL", 4.0),
        ("platelets", 50_000, "/uL", "10^9/L", 50.0),
        ("platelets", 50, "10^9/L", "/uL", 50_000.0),
        ("sodium", 137, "mEq/L", "mmol/L", 137.0),
    ],
)
def test_conversions_hit_cut_offs_exactly(analyte, value, unit, to_unit, expected):
    assert units.convert(analyte, value, unit, to_unit) == expected


def test_canonical_units_are_those_the_scores_use():
    assert [units.canonical_unit(a) for a in ("bilirubin", "albumin", "creatinine", "platelets", "sodium")] == [
        "mg/dL",
        "g/dL",
        "mg/dL",
        "10^9/L",
        "mmol/L",
    ]


@pytest.mark.parametrize(
    ("analyte", "given", "accepted"),
    [
        ("platelets", "10*3/mm3", "10^9/L"),  # a thousand per cubic millimetre is 10^9 per litre
        ("platelets", "/mm3", "/uL"),
        ("platelets", "10*3/uL{cells}", "10^9/L"),  # annotations are ignored
        ("platelets", "1000/uL", "10^9/L"),
        ("platelets", "10*9/l", "10^9/L"),
        ("sodium", "meq/L", "mEq/L"),
        ("sodium", "mmol/l", "mmol/L"),
        ("bilirubin", "umol/l", "umol/L"),
        ("albumin", "g/l", "g/L"),
    ],
)
def test_ucum_codes_match_by_quantity(analyte, given, accepted):
    assert units.normalise_unit(analyte, given) == accepted


@pytest.mark.parametrize(
    ("unit", "dimension", "size"),
    [
        ("mg/dL", ("mass", "volume"), 0.01),
        ("g/L", ("mass", "volume"), 1.0),
        ("umol/L", ("amount", "volume"), 1e-6),
        ("meq/L", ("amount", "volume"), 1e-3),
        ("10*9/L", ("count", "volume"), 1e9),
        ("10*3/mm3", ("count", "volume"), 1e9),
        ("/uL", ("count", "volume"), 1e6),
        ("ng/mL", ("mass", "volume"), 1e-6),
    ],
)
def test_parse_ucum(unit, dimension, size):
    assert units.parse_ucum(unit) == (dimension, size)


@pytest.mark.parametrize("unit", ["", "mg/dL/L", "10*x/L", "furlong/L", "mm2/L", "g.g/L"])
def test_parse_ucum_refuses_what_it_cannot_read(unit):
    with pytest.raises(ValueError, match="not a lab unit"):
        units.parse_ucum(unit)
