"""BCLC 2022 precedence and conventions; Milan, UCSF and up-to-seven at their inclusive bounds."""

import pytest
from support.cases import lesions, make_case

from cryoplan.clinical import assess
from cryoplan.clinical.scores import child_pugh
from cryoplan.clinical.staging import bclc, bclc_burden_stage, milan, ucsf, up_to_seven

A5 = child_pugh(bilirubin_mg_dl=1, albumin_g_dl=4, ascites="none", encephalopathy_grade=0, inr=1)
A6_ASCITES = child_pugh(bilirubin_mg_dl=1, albumin_g_dl=4, ascites="mild", encephalopathy_grade=0, inr=1)
A6_DRY = child_pugh(bilirubin_mg_dl=2, albumin_g_dl=4, ascites="none", encephalopathy_grade=0, inr=1)
B7 = child_pugh(bilirubin_mg_dl=2, albumin_g_dl=3, ascites="none", encephalopathy_grade=0, inr=1)
C10 = child_pugh(bilirubin_mg_dl=3.5, albumin_g_dl=2.5, ascites="mild", encephalopathy_grade=0, inr=1)


def stage(diameters, *, ecog=0, vascular_invasion=False, extrahepatic_spread=False, cp=A5, ascites=None):
    ascites = ascites if ascites is not None else ("none" if cp is None or cp.components["ascites"] == 1 else "mild")
    return bclc(
        diameters,
        vascular_invasion=vascular_invasion,
        extrahepatic_spread=extrahepatic_spread,
        ecog=ecog,
        child_pugh=cp,
        ascites=ascites,
    )


@pytest.mark.parametrize(
    ("diameters", "expected"),
    [
        ([20], "0"),
        ([20.1], "A"),
        ([80], "A"),  # single nodule of any size is A
        ([30, 30, 30], "A"),
        ([30, 30.1], "B"),
        ([10, 10, 10, 10], "B"),
        ([12, 8], "A"),
    ],
)
def test_bclc_by_tumour_burden(diameters, expected):
    result = stage(diameters)
    assert result.stage == result.burden_stage == expected and result.liver_function_preserved is True


def test_bclc_precedence_d_before_c_before_burden():
    assert stage([15], ecog=3).stage == "D"
    assert stage([15], ecog=3, vascular_invasion=True).stage == "D"
    assert stage([15], cp=C10).stage == "D"
    assert stage([15], cp=C10, vascular_invasion=True, ecog=1).stage == "D"
    assert stage([15], ecog=1).stage == "C"
    assert stage([15], ecog=2).stage == "C"
    assert stage([15], vascular_invasion=True).stage == "C"
    assert stage([15, 40, 50, 60], extrahepatic_spread=True).stage == "C"
    assert stage([15], ecog=3, cp=B7).stage == "D"  # ECOG ≥ 3 needs no liver-function class


def test_bclc_undetermined_for_child_pugh_b_or_a_with_ascites():
    for cp, reason in ((B7, "B7"), (A6_ASCITES, "with ascites")):
        result = stage([15], cp=cp)
        assert result.stage is None and result.burden_stage == "0"
        assert result.liver_function_preserved is False and reason in result.reason
    dry = stage([15], cp=A6_DRY)
    assert dry.stage == "0" and dry.liver_function_preserved is True
    assert stage([15], cp=B7, vascular_invasion=True).burden_stage == "C"


def test_bclc_with_unknowns():
    result = stage([15], cp=None)
    assert result.stage is None and result.burden_stage == "0" and "liver function unknown" in result.reason
    result = stage([15], ecog=None)
    assert result.stage is None and result.burden_stage is None and "ECOG" in result.reason
    assert stage([15], ecog=None, cp=C10).stage == "D"
    assert stage([15], ecog=None, vascular_invasion=True).stage == "C"
    assert bclc_burden_stage([], vascular_invasion=False, extrahepatic_spread=False, ecog=0)[0] is None


@pytest.mark.parametrize(
    ("diameters", "vi", "ehs", "expected"),
    [
        ([50], False, False, True),
        ([50.1], False, False, False),
        ([30, 30, 30], False, False, True),
        ([30.1, 10], False, False, False),
        ([10, 10, 10, 10], False, False, False),
        ([20], True, False, False),
        ([20], False, True, False),
        ([20], None, False, None),
        ([60], None, None, False),  # too large whatever the invasion
    ],
)
def test_milan(diameters, vi, ehs, expected):
    assert milan(diameters, vascular_invasion=vi, extrahepatic_spread=ehs) is expected


@pytest.mark.parametrize(
    ("diameters", "vi", "expected"),
    [
        ([65], False, True),
        ([65.1], False, False),
        ([45, 20, 15], False, True),
        ([45.1, 20, 10], False, False),
        ([45, 20, 15.1], False, False),  # sum 80.1
        ([30, 30, 30], False, False),  # inside Milan but outside UCSF (sum 90 mm)
        ([10, 10, 10, 10], False, False),
        ([20], True, False),
        ([20], None, None),
    ],
)
def test_ucsf(diameters, vi, expected):
    assert ucsf(diameters, vascular_invasion=vi, extrahepatic_spread=False) is expected


@pytest.mark.parametrize(
    ("diameters", "vi", "expected"),
    [
        ([40, 10, 10], False, True),
        ([40.1, 10, 10], False, False),
        ([60], False, True),
        ([60.1], False, False),
        ([20, 20, 20, 20, 20], False, True),
        ([10] * 7, False, False),
        ([20], True, False),
        ([20], None, None),
    ],
)
def test_up_to_seven(diameters, vi, expected):
    assert up_to_seven(diameters, vascular_invasion=vi, extrahepatic_spread=False) is expected


@pytest.mark.parametrize("criterion", [milan, ucsf, up_to_seven])
@pytest.mark.parametrize(("spread", "expected"), [(True, False), (None, None), (False, True)])
def test_extrahepatic_spread_puts_a_patient_outside_every_transplant_criterion(criterion, spread, expected):
    assert criterion([20], vascular_invasion=False, extrahepatic_spread=spread) is expected


def test_extrahepatic_spread_through_assess():
    result = assess(make_case(diagnosis__extrahepatic_spread=True))
    assert result.transplant.to_dict() == {"milan": False, "ucsf": False, "up_to_seven": False}
    assert result.bclc.stage == "C"


def test_three_3_cm_nodules_inside_milan_outside_ucsf_through_assess():
    result = assess(make_case(lesions=lesions(30, 30, 30)))
    assert result.transplant.to_dict() == {"milan": True, "ucsf": False, "up_to_seven": True}


def test_hcc_only_items_are_null_for_metastases():
    result = assess(make_case(diagnosis={"type": "breast_metastasis", "cirrhosis": False}))
    document = result.to_dict()
    assert document["bclc"] is None and document["transplant"] is None
    # Liver function is still scored, from the same labs and findings as for an HCC.
    assert document["child_pugh"] == assess(make_case()).to_dict()["child_pugh"]


def test_bclc_through_assess_uses_ascites_and_child_pugh():
    assert assess(make_case(clinical__ascites="mild")).bclc.stage is None  # A6 with ascites: undetermined
    assert assess(make_case()).bclc.to_dict()["stage"] == "A"
    assert assess(make_case(lesions=lesions(18))).bclc.stage == "0"
