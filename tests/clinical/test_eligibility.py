"""Every status rule of the selection criteria on both sides of its boundary, the verdict rules, the
recommendations and the missing inputs."""

import itertools

import pytest
from support.cases import DELETE, lesions, make_case

from cryoplan.clinical import assess
from cryoplan.clinical.eligibility import DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML, verdict


def criterion(result, name):
    return next(c for c in result.criteria if c.id == name)


def status(name, **changes):
    return criterion(assess(make_case(**changes)), name).status


@pytest.mark.parametrize(("count", "expected"), [(1, "preferred"), (3, "preferred"), (4, "review"), (6, "review")])
def test_lesion_count(count, expected):
    assert status("lesion_count", lesions=lesions(*[10] * count)) == expected


@pytest.mark.parametrize(
    ("diameter", "expected"),
    [(30, "preferred"), (30.1, "conditional"), (50, "conditional"), (50.1, "review")],
)
def test_max_diameter(diameter, expected):
    assert status("max_diameter", lesions=lesions(12, diameter)) == expected


@pytest.mark.parametrize(
    ("labs", "clinical", "label", "expected"),
    [
        ({}, {}, "A5", "preferred"),
        ({"labs.bilirubin": {"value": 2.0, "unit": "mg/dL"}}, {}, "A6", "preferred"),
        (
            {"labs.bilirubin": {"value": 2.0, "unit": "mg/dL"}, "labs.albumin": {"value": 3.0, "unit": "g/dL"}},
            {},
            "B7",
            "preferred",
        ),
        (
            {
                "labs.bilirubin": {"value": 2.0, "unit": "mg/dL"},
                "labs.albumin": {"value": 3.0, "unit": "g/dL"},
                "labs.inr": 1.7,
            },
            {},
            "B8",
            "contraindicated",
        ),
        (
            {
                "labs.bilirubin": {"value": 2.0, "unit": "mg/dL"},
                "labs.albumin": {"value": 3.0, "unit": "g/dL"},
                "labs.inr": 1.7,
            },
            {"clinical.encephalopathy_grade": 1},
            "B9",
            "contraindicated",
        ),
        (
            {
                "labs.bilirubin": {"value": 3.1, "unit": "mg/dL"},
                "labs.albumin": {"value": 3.0, "unit": "g/dL"},
                "labs.inr": 1.7,
            },
            {"clinical.encephalopathy_grade": 1},
            "C10",
            "contraindicated",
        ),
    ],
)
def test_child_pugh_criterion(labs, clinical, label, expected):
    row = criterion(assess(make_case(**labs, **clinical)), "child_pugh")
    assert (row.value, row.status) == (label, expected)


def test_child_pugh_criterion_applies_to_metastases_only_with_cirrhosis():
    b8 = {
        "labs.bilirubin": {"value": 2.0, "unit": "mg/dL"},
        "labs.albumin": {"value": 3.0, "unit": "g/dL"},
        "labs.inr": 1.7,
    }
    assert (
        status("child_pugh", diagnosis={"type": "colorectal_metastasis", "cirrhosis": False}, **b8) == "not_applicable"
    )
    assert (
        status(
            "child_pugh",
            diagnosis={"type": "colorectal_metastasis", "cirrhosis": True, "liver_disease": "alcohol"},
            **b8,
        )
        == "contraindicated"
    )
    result = assess(make_case(diagnosis={"type": "colorectal_metastasis"}))
    assert criterion(result, "child_pugh").status == "unknown" and "diagnosis.cirrhosis" in result.missing_inputs
    assert (
        status("child_pugh", diagnosis={"type": "hcc", "cirrhosis": False, "liver_disease": "none"}, **b8)
        == "contraindicated"
    )


@pytest.mark.parametrize(
    ("bilirubin", "expected"),
    [
        ({"value": 1.99, "unit": "mg/dL"}, "preferred"),
        ({"value": 2.0, "unit": "mg/dL"}, "review"),
        ({"value": 34.1, "unit": "umol/L"}, "preferred"),
        ({"value": 34.2, "unit": "umol/L"}, "review"),
    ],
)
def test_bilirubin_criterion(bilirubin, expected):
    assert status("bilirubin", labs__bilirubin=bilirubin) == expected


@pytest.mark.parametrize(
    ("platelets", "expected"),
    [
        ({"value": 50.1, "unit": "10^9/L"}, "preferred"),
        ({"value": 50, "unit": "10^9/L"}, "conditional"),
        ({"value": 50_001, "unit": "/uL"}, "preferred"),
        ({"value": 50_000, "unit": "/uL"}, "conditional"),
    ],
)
def test_platelet_criterion(platelets, expected):
    assert status("platelets", labs__platelets=platelets) == expected


@pytest.mark.parametrize(
    ("distances", "expected", "value"),
    [
        ([5.1, 20], "preferred", 5.1),
        ([20, 5.0], "conditional", 5.0),
        ([0, 20], "conditional", 0),
        ([None, 20], "unknown", None),
        ([None, 3], "conditional", 3),
    ],
)
def test_bile_duct_distance_is_the_smallest_over_lesions(distances, expected, value):
    lesion_list = [
        {"id": f"L{i}", "diameter_mm": 15, **({} if d is None else {"distance_to_bile_duct_mm": d})}
        for i, d in enumerate(distances)
    ]
    row = criterion(assess(make_case(lesions=lesion_list)), "bile_duct_distance")
    assert (row.status, row.value) == (expected, value)


def test_missing_values_are_unknown_and_named():
    result = assess(make_case(labs__platelets=DELETE, labs__bilirubin=DELETE, lesions=[]))
    statuses = {c.id: c.status for c in result.criteria}
    assert statuses == {
        "lesion_count": "unknown",
        "max_diameter": "unknown",
        "child_pugh": "unknown",
        "bilirubin": "unknown",
        "platelets": "unknown",
        "bile_duct_distance": "unknown",
    }
    for field in ("labs.bilirubin", "labs.platelets", "lesions"):
        assert field in result.missing_inputs
    assert result.child_pugh is None and result.albi is None and result.verdict == "mdt_review"


def test_unknown_liver_disease_matters_only_where_the_bands_differ():
    assert assess(make_case(diagnosis__liver_disease=DELETE)).child_pugh.label == "A5"  # 1.1 mg/dL: 1 point either way
    result = assess(make_case(diagnosis__liver_disease=DELETE, labs__bilirubin={"value": 3.5, "unit": "mg/dL"}))
    assert result.child_pugh is None and "diagnosis.liver_disease" in result.missing_inputs


def test_prothrombin_time_stands_in_for_inr_in_child_pugh_but_not_meld():
    result = assess(make_case(labs__inr=DELETE, labs__prothrombin_time_prolonged_s=4.0))
    assert result.child_pugh.components["coagulation"] == 2
    assert result.meld.meld is None and "labs.inr" in result.missing_inputs


STATUSES = ["preferred", "conditional", "review", "contraindicated", "unknown", "not_applicable"]


@pytest.mark.parametrize("statuses", [list(c) for n in range(1, 4) for c in itertools.product(STATUSES, repeat=n)])
def test_verdict_rules(statuses):
    if "contraindicated" in statuses:
        expected = "not_recommended"
    elif "review" in statuses or "unknown" in statuses:
        expected = "mdt_review"
    elif "conditional" in statuses:
        expected = "suitable_with_conditions"
    else:
        expected = "suitable"
    assert verdict(statuses) == expected


def test_verdicts_of_whole_cases():
    assert assess(make_case()).verdict == "suitable"
    assert assess(make_case(lesions=lesions(35))).verdict == "suitable_with_conditions"
    assert assess(make_case(lesions=lesions(35, 10, 10, 10))).verdict == "mdt_review"
    assert assess(make_case(labs__inr=2.5, clinical__ascites="moderate_severe")).verdict == "not_recommended"


def recommendation_ids(**changes):
    return [r.id for r in assess(make_case(**changes)).recommendations]


def test_recommendations_and_their_triggers():
    assert recommendation_ids() == ["intent", "bclc_treatment"]
    assert "bridge_to_transplant" in recommendation_ids(transplant_listed=True)
    assert "bridge_to_transplant" not in recommendation_ids(transplant_listed=True, lesions=lesions(55))  # beyond Milan
    assert "tace_then_cryoablation" in recommendation_ids(lesions=lesions(30.1))
    assert "tace_then_cryoablation" not in recommendation_ids(lesions=lesions(30))
    assert "tace_then_cryoablation" in recommendation_ids(lesions=lesions(10, 10, 10, 10))  # BCLC B
    assert "cryoablation_over_rfa" in recommendation_ids(lesions=lesions(20, vessel_mm=10))
    assert "cryoablation_over_rfa" not in recommendation_ids(lesions=lesions(20, vessel_mm=10.1))
    assert "platelet_transfusion" in recommendation_ids(labs__platelets={"value": 50, "unit": "10^9/L"})
    assert "biliary_cooling" in recommendation_ids(lesions=lesions(20, bile_duct_mm=5))
    assert "hepatologist_review" in recommendation_ids(labs__inr=2.5, clinical__ascites="moderate_severe")
    assert "staged_sessions" in recommendation_ids(lesions=lesions(10, 10, 10, 10))
    assert "staged_sessions" not in recommendation_ids(lesions=lesions(10, 10, 10))


def test_intent_is_curative_for_bclc_0_a_and_disease_control_for_oligometastases():
    texts = {r.id: r for r in assess(make_case()).recommendations}
    assert texts["intent"].text.startswith("Curative")
    result = assess(make_case(diagnosis={"type": "colorectal_metastasis", "cirrhosis": False}, lesions=lesions(20, 15)))
    assert next(r for r in result.recommendations if r.id == "intent").text.startswith("Disease-control")
    assert "intent" not in recommendation_ids(lesions=lesions(10, 10, 10, 10))  # BCLC B
    result = assess(
        make_case(diagnosis={"type": "colorectal_metastasis", "cirrhosis": False}, lesions=lesions(*[10] * 5))
    )
    assert "intent" not in [r.id for r in result.recommendations]


def test_bclc_treatment_follows_the_stage():
    rec = next(r for r in assess(make_case(patient__ecog=1)).recommendations if r.id == "bclc_treatment")
    assert rec.text.startswith("Systemic therapy") and rec.reason == "BCLC stage C" and "Reig" in rec.source


def test_cryoshock_caution_threshold_is_configurable():
    case = make_case(lesions=lesions(48))  # 57.9 ml sphere
    assert 48**3 * 3.141592653589793 / 6 / 1000 > DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML
    ids = [r.id for r in assess(case).recommendations]
    assert "cryoshock_caution" in ids
    rec = next(r for r in assess(case).recommendations if r.id == "cryoshock_caution")
    assert "not a guideline" in rec.source
    assert "cryoshock_caution" not in [r.id for r in assess(case, cryoshock_tumour_volume_ml=60).recommendations]
    assert "cryoshock_caution" in [r.id for r in assess(make_case(), cryoshock_tumour_volume_ml=7).recommendations]


def test_every_recommendation_has_reason_and_source():
    result = assess(
        make_case(
            lesions=lesions(35, 10, 10, 10, bile_duct_mm=4, vessel_mm=3),
            transplant_listed=True,
            labs__platelets={"value": 30, "unit": "10^9/L"},
        ),
        cryoshock_tumour_volume_ml=1,
    )
    assert len(result.recommendations) >= 6
    for rec in result.recommendations:
        assert rec.text and rec.reason and rec.source


def test_json_document_contract():
    document = assess(make_case()).to_dict()
    assert document["schema_version"] == 1
    assert set(document) >= {
        "child_pugh",
        "albi",
        "meld",
        "bclc",
        "transplant",
        "criteria",
        "verdict",
        "recommendations",
        "missing_inputs",
    }
    assert set(document["child_pugh"]) >= {"points", "class", "components"}
    assert set(document["child_pugh"]["components"]) == {
        "bilirubin",
        "albumin",
        "coagulation",
        "ascites",
        "encephalopathy",
    }
    assert set(document["meld"]) >= {"meld", "meld_na", "meld_3"}
    assert set(document["bclc"]) >= {"stage", "burden_stage", "liver_function_preserved", "reason"}
    assert [c["id"] for c in document["criteria"]] == [
        "lesion_count",
        "max_diameter",
        "child_pugh",
        "bilirubin",
        "platelets",
        "bile_duct_distance",
    ]
    assert all(set(c) >= {"id", "value", "status", "note"} for c in document["criteria"])
