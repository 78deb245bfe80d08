"""Child-Pugh, ALBI and the MELD family pinned at every cut-off, on both sides, and at every convention."""

import math

import pytest
from support.cases import make_case

from cryoplan.clinical import assess
from cryoplan.clinical.scores import albi, albi_grade, child_pugh, meld, meld_3, meld_na, round_half_up

NORMAL = dict(bilirubin_mg_dl=1.0, albumin_g_dl=4.0, ascites="none", encephalopathy_grade=0, inr=1.0)


def cp_component(name, **changes):
    return child_pugh(**{**NORMAL, **changes}).components[name]


@pytest.mark.parametrize(("bilirubin", "points"), [(1.99, 1), (2.0, 2), (2.5, 2), (3.0, 2), (3.01, 3)])
def test_child_pugh_bilirubin_bands_closed_in_the_middle(bilirubin, points):
    assert cp_component("bilirubin", bilirubin_mg_dl=bilirubin) == points


@pytest.mark.parametrize(("bilirubin", "points"), [(3.99, 1), (4.0, 2), (10.0, 2), (10.01, 3)])
def test_child_pugh_cholestatic_bilirubin_bands(bilirubin, points):
    assert cp_component("bilirubin", bilirubin_mg_dl=bilirubin, cholestatic=True) == points


@pytest.mark.parametrize(("albumin", "points"), [(3.51, 1), (3.5, 2), (2.9, 2), (2.8, 2), (2.79, 3)])
def test_child_pugh_albumin_bands_are_pughs(albumin, points):
    # 2.9 g/dL scores 2: Pugh's 2.8 g/dL band, not the 3.0 g/dL textbook variant.
    assert cp_component("albumin", albumin_g_dl=albumin) == points


@pytest.mark.parametrize(("inr", "points"), [(1.69, 1), (1.7, 2), (2.25, 2), (2.3, 2), (2.31, 3)])
def test_child_pugh_inr_bands_1_7_and_2_3(inr, points):
    # 2.25 scores 2: the upper INR band is 2.3, not 2.2.
    assert cp_component("coagulation", inr=inr) == points


@pytest.mark.parametrize(("seconds", "points"), [(3.9, 1), (4.0, 2), (6.0, 2), (6.1, 3)])
def test_child_pugh_prothrombin_time_when_no_inr(seconds, points):
    assert cp_component("coagulation", inr=None, prothrombin_time_prolonged_s=seconds) == points


def test_child_pugh_uses_inr_when_both_are_given():
    assert cp_component("coagulation", inr=1.2, prothrombin_time_prolonged_s=5.0) == 1
    with pytest.raises(ValueError):
        child_pugh(**{**NORMAL, "inr": None})


@pytest.mark.parametrize(("ascites", "points"), [("none", 1), ("mild", 2), ("moderate_severe", 3)])
def test_child_pugh_ascites(ascites, points):
    assert cp_component("ascites", ascites=ascites) == points


@pytest.mark.parametrize(("grade", "points"), [(0, 1), (1, 2), (2, 2), (3, 3), (4, 3)])
def test_child_pugh_encephalopathy(grade, points):
    assert cp_component("encephalopathy", encephalopathy_grade=grade) == points


@pytest.mark.parametrize(
    ("changes", "label"),
    [
        ({}, "A5"),
        ({"bilirubin_mg_dl": 2.0}, "A6"),
        ({"bilirubin_mg_dl": 2.0, "albumin_g_dl": 3.0}, "B7"),
        ({"bilirubin_mg_dl": 2.0, "albumin_g_dl": 3.0, "inr": 1.8}, "B8"),
        ({"bilirubin_mg_dl": 3.5, "albumin_g_dl": 3.0, "inr": 1.8}, "B9"),
        ({"bilirubin_mg_dl": 3.5, "albumin_g_dl": 3.0, "inr": 1.8, "ascites": "mild"}, "C10"),
        (
            {
                "bilirubin_mg_dl": 9,
                "albumin_g_dl": 2,
                "inr": 3,
                "ascites": "moderate_severe",
                "encephalopathy_grade": 4,
            },
            "C15",
        ),
    ],
)
def test_child_pugh_classes_and_points(changes, label):
    score = child_pugh(**{**NORMAL, **changes})
    assert score.label == label and score.points == sum(score.components.values())


@pytest.mark.parametrize(
    ("bilirubin", "points"),
    [
        ({"value": 34.1, "unit": "umol/L"}, 1),
        ({"value": 34.2, "unit": "umol/L"}, 2),
        ({"value": 51.3, "unit": "umol/L"}, 2),
        ({"value": 51.4, "unit": "umol/L"}, 3),
    ],
)
def test_child_pugh_si_bilirubin_is_converted_before_the_bands(bilirubin, points):
    # 34.2 and 51.3 µmol/L are exactly 2.0 and 3.0 mg/dL; the rounded 34 / 51 µmol/L cut-offs are not used.
    assert assess(make_case(labs__bilirubin=bilirubin)).child_pugh.components["bilirubin"] == points


@pytest.mark.parametrize(("albumin_g_l", "points"), [(35.1, 1), (35, 2), (28, 2), (27.9, 3)])
def test_child_pugh_si_albumin_is_converted_before_the_bands(albumin_g_l, points):
    case = make_case(labs__albumin={"value": albumin_g_l, "unit": "g/L"})
    assert assess(case).child_pugh.components["albumin"] == points


def test_cholestatic_bands_follow_pbc_and_psc():
    for disease, points in (("pbc", 1), ("psc", 1), ("hbv", 3)):
        case = make_case(labs__bilirubin={"value": 3.5, "unit": "mg/dL"}, diagnosis__liver_disease=disease)
        assert assess(case).child_pugh.components["bilirubin"] == points


def test_albi_formula_uses_si_units():
    result = albi(bilirubin_umol_l=18.81, albumin_g_l=39)
    assert result.score == pytest.approx(0.66 * math.log10(18.81) - 0.085 * 39, abs=1e-12)
    from_conventional = assess(make_case()).albi  # 1.1 mg/dL and 3.9 g/dL
    assert from_conventional.score == pytest.approx(result.score, abs=1e-12)


@pytest.mark.parametrize(
    ("score", "grade"), [(-2.61, 1), (-2.60, 1), (-2.5999999, 2), (-1.40, 2), (-1.39, 2), (-1.3899999, 3)]
)
def test_albi_grade_cut_offs(score, grade):
    assert albi_grade(score) == grade


def test_albi_grade_comes_from_the_unrounded_score():
    albumin = (0.66 * math.log10(20) + 2.597) / 0.085  # gives a score of -2.597, displayed as -2.60
    result = albi(bilirubin_umol_l=20, albumin_g_l=albumin)
    assert f"{result.score:.2f}" == "-2.60" and result.grade == 2
    assert result.score == pytest.approx(-2.597, abs=1e-9)


def test_round_half_up_is_not_bankers_rounding():
    assert [round_half_up(x) for x in (0.5, 2.5, 6.5, 16.5, 7.49999, 7.5, 20.5)] == [1, 3, 7, 17, 7, 8, 21]
    assert [round(x) for x in (2.5, 6.5, 16.5)] == [2, 6, 16]  # what Python's round would give


def meld_reference(bilirubin, inr, creatinine):
    return 10 * (0.957 * math.log(creatinine) + 0.378 * math.log(bilirubin) + 1.120 * math.log(inr) + 0.643)


def test_meld_formula_rounded_half_up():
    raw = meld_reference(2.3, 1.6, 1.4)
    assert meld(bilirubin_mg_dl=2.3, inr=1.6, creatinine_mg_dl=1.4) == math.floor(raw + 0.5)


def test_meld_floors_caps_and_dialysis():
    kwargs = dict(bilirubin_mg_dl=3.0, inr=1.5)
    assert (
        meld(bilirubin_mg_dl=0.4, inr=0.8, creatinine_mg_dl=0.5)
        == meld(bilirubin_mg_dl=1, inr=1, creatinine_mg_dl=1)
        == 6
    )
    assert meld(**kwargs, creatinine_mg_dl=5.0) == meld(**kwargs, creatinine_mg_dl=4.0)
    assert meld(**kwargs, creatinine_mg_dl=3.0) < meld(**kwargs, creatinine_mg_dl=4.0)
    assert meld(**kwargs, creatinine_mg_dl=0.7, dialysis=True) == meld(**kwargs, creatinine_mg_dl=4.0)
    assert meld(bilirubin_mg_dl=40, inr=8, creatinine_mg_dl=4) == 40
    assert meld_reference(40, 8, 4) > 40


def test_meld_na_applies_only_above_11_and_bounds_sodium():
    assert meld_na(meld_score=11, sodium_mmol_l=125) == 11
    assert meld_na(meld_score=12, sodium_mmol_l=125) == round_half_up(12 + 1.32 * 12 - 0.033 * 12 * 12) == 23
    assert meld_na(meld_score=20, sodium_mmol_l=120) == meld_na(meld_score=20, sodium_mmol_l=125)
    assert meld_na(meld_score=20, sodium_mmol_l=140) == meld_na(meld_score=20, sodium_mmol_l=137) == 20
    # MELD 13, Na 133: 13 + 5.28 - 1.716 = 16.564 → 17 (rounded, not truncated)
    assert meld_na(meld_score=13, sodium_mmol_l=133) == 17


def test_meld_na_never_exceeds_40():
    # With MELD ≤ 40 the sodium term cannot lift the score above 40: MELD + 12 (1.32 - 0.033 MELD) ≤ 40.
    results = [meld_na(meld_score=m, sodium_mmol_l=na) for m in range(6, 41) for na in range(120, 141)]
    assert max(results) == 40 and meld_na(meld_score=40, sodium_mmol_l=125) == 40


def test_meld_na_uses_the_rounded_integer_meld():
    case = make_case(
        labs__bilirubin={"value": 4.0, "unit": "mg/dL"},
        labs__inr=1.9,
        labs__creatinine={"value": 1.6, "unit": "mg/dL"},
        labs__sodium={"value": 130, "unit": "mmol/L"},
    )
    result = assess(case).meld
    integer = result.meld
    assert integer != meld_reference(4.0, 1.9, 1.6)
    assert result.meld_na == round_half_up(integer + 1.32 * 7 - 0.033 * integer * 7)


MELD3_NORMAL = dict(
    bilirubin_mg_dl=1.0, inr=1.0, creatinine_mg_dl=1.0, sodium_mmol_l=137, albumin_g_dl=3.5, sex="male", age=50
)


def meld3(**changes):
    return meld_3(**{**MELD3_NORMAL, **changes})


def test_meld_3_rounds_half_up():
    # 6 + 0.82 × 11 + 1.85 × 0.8 = 16.5 exactly in floating point: half up gives 17 (Python's round gives 16).
    assert meld3(sodium_mmol_l=126, albumin_g_dl=2.7) == 17
    assert meld3(sex="female", sodium_mmol_l=125, albumin_g_dl=1.7) == 21  # 7.33 + 9.84 + 3.33 = 20.5


def test_meld_3_sex_and_age_terms():
    assert meld3() == 6
    assert meld3(sex="female") == 7  # 7.33
    assert meld3(sex="male", age=17) == meld3(sex="female", age=17) == meld3(sex="female", age=18) == 7
    assert meld3(sex="male", age=18) == 6
    with pytest.raises(ValueError, match="PELD"):
        meld3(age=11)
    assert meld3(age=12) == 7


def test_meld_3_bounds_on_inputs_and_result():
    assert meld3(albumin_g_dl=1.2) == meld3(albumin_g_dl=1.5)
    assert meld3(albumin_g_dl=4.5) == meld3(albumin_g_dl=3.5)
    assert meld3(sodium_mmol_l=120) == meld3(sodium_mmol_l=125)
    assert meld3(sodium_mmol_l=145) == meld3(sodium_mmol_l=137)
    assert meld3(creatinine_mg_dl=3.5) == meld3(creatinine_mg_dl=3.0) > meld3(creatinine_mg_dl=2.5)
    assert meld3(creatinine_mg_dl=0.8, dialysis=True) == meld3(creatinine_mg_dl=3.0)
    assert meld3(bilirubin_mg_dl=0.3, inr=0.9, creatinine_mg_dl=0.5) == 6
    assert meld3(bilirubin_mg_dl=30, inr=4, creatinine_mg_dl=3, sodium_mmol_l=125, albumin_g_dl=1.5) == 40


def test_meld_3_matches_the_published_formula():
    b, inr, cr, na, alb = 2.4, 1.7, 1.8, 131, 2.9
    raw = (
        1.33
        + 4.56 * math.log(b)
        + 0.82 * (137 - na)
        - 0.24 * (137 - na) * math.log(b)
        + 9.09 * math.log(inr)
        + 11.14 * math.log(cr)
        + 1.85 * (3.5 - alb)
        - 1.83 * (3.5 - alb) * math.log(cr)
        + 6
    )
    assert meld3(
        bilirubin_mg_dl=b, inr=inr, creatinine_mg_dl=cr, sodium_mmol_l=na, albumin_g_dl=alb, sex="female"
    ) == math.floor(raw + 0.5)


def test_meld_family_null_with_missing_inputs_and_under_12():
    result = assess(make_case(labs__creatinine=None))
    assert (result.meld.meld, result.meld.meld_na, result.meld.meld_3) == (None, None, None)
    assert "labs.creatinine" in result.missing_inputs
    result = assess(make_case(patient__sex=None))
    # The original MELD has no sex term: the same score as with the sex given; MELD 3.0 needs it.
    assert result.meld.meld == assess(make_case()).meld.meld
    assert result.meld.meld_3 is None and "patient.sex" in result.missing_inputs
    result = assess(make_case(patient__age=15, patient__sex=None))
    # From 12 to 17 MELD 3.0's intercept is the same for both sexes, so an unknown sex is no missing input.
    either = {assess(make_case(patient__age=15, patient__sex=sex)).meld.meld_3 for sex in ("male", "female")}
    assert either == {result.meld.meld_3} and "patient.sex" not in result.missing_inputs
    result = assess(make_case(patient__age=10))
    assert result.meld.meld is None and "PELD" in result.meld.note


def test_docstring_examples_hold():
    import doctest

    from cryoplan import units
    from cryoplan.clinical import scores

    for module in (units, scores):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
