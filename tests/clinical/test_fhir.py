"""FHIR R4 bundles: the same Case as the case file, unused entries listed, bad bundles refused."""

import json

import pytest
from support.cases import make_case
from support.fhir import BASELINE, EXAMPLES, ICD10, SNOMED, bundle, condition, observation

from cryoplan.clinical import assess, read_case_file
from cryoplan.clinical.fhir import case_from_bundle
from cryoplan.errors import InputError


def read_bundle(document):
    record = case_from_bundle(document)
    return record.case, record.unused


def test_bundle_builds_the_same_case_as_the_case_file():
    case, unused = read_bundle(bundle(*BASELINE))
    reference = make_case()
    assert case.patient == reference.patient  # age 64 at the bundle's timestamp
    assert case.labs == reference.labs
    assert (case.diagnosis.type, case.diagnosis.cirrhosis, case.diagnosis.liver_disease) == ("hcc", True, "hbv")
    assert [(lesion.id, lesion.diameter_mm) for lesion in case.lesions] == [("L1", 24.0)]
    assert unused == []
    # What FHIR cannot carry here stays missing, and the assessment says so.
    assert {"clinical.ascites", "diagnosis.vascular_invasion"} <= set(assess(case).missing_inputs)


def test_unused_entries_are_listed_not_dropped():
    entries = [
        *BASELINE,
        observation("hb", "718-7", 13.1, "g/dL"),
        observation("plt-old", "777-3", 90, "10*3/uL", date="2026-01-03"),
        observation("cancelled", "1975-2", 9.0, "mg/dL", status="cancelled"),
        condition("refuted", SNOMED, "94381002", verificationStatus={"coding": [{"code": "refuted"}]}),
        condition("asthma", SNOMED, "195967001"),
        {
            "resource": {
                "resourceType": "MedicationStatement",
                "id": "m",
                "status": "active",
                "medicationCodeableConcept": {"text": "entecavir"},
                "subject": {"reference": "Patient/p"},
            }
        },
    ]
    case, unused = read_bundle(bundle(*entries))
    assert case.labs.platelets.canonical == 140  # the later of the two platelet counts
    assert case.diagnosis.type == "hcc"  # the refuted metastasis is not used
    text = "\n".join(unused)
    for name in (
        "Observation/hb",
        "Observation/plt-old",
        "Observation/cancelled",
        "Condition/refuted",
        "Condition/asthma",
        "MedicationStatement/m",
    ):
        assert name in text
    assert len(unused) == 6


def test_metastasis_typed_by_its_primary_and_si_units():
    entries = [
        condition("met", ICD10, "C78.7"),
        condition("crc", ICD10, "C18.7"),
        observation("bili", "1975-2", 34.2, "umol/L"),
        observation("plt", "777-3", 50, "10*3/uL"),
    ]
    case, _ = read_bundle(bundle(*entries))
    assert case.diagnosis.type == "colorectal_metastasis"
    assert case.labs.bilirubin.canonical == 2.0 and case.labs.platelets.canonical == 50
    case, _ = read_bundle(bundle(condition("met", SNOMED, "94381002")))
    assert case.diagnosis.type == "other_metastasis"


def test_cholestatic_disease_wins_over_another_aetiology():
    case, unused = read_bundle(
        bundle(condition("hcc", ICD10, "C22.0"), condition("hcv", ICD10, "B18.2"), condition("pbc", SNOMED, "31712002"))
    )
    assert case.diagnosis.liver_disease == "pbc" and any("Condition/hcv" in u for u in unused)


def test_age_without_timestamp_uses_the_latest_observation():
    case, _ = read_bundle(
        bundle(
            condition("hcc", ICD10, "C22.0"),
            observation("bili", "1975-2", 1.0, "mg/dL", date="2026-06-14"),
            timestamp=None,
        )
    )
    assert case.patient.age == 64
    case, _ = read_bundle(
        bundle(
            condition("hcc", ICD10, "C22.0"),
            observation("bili", "1975-2", 1.0, "mg/dL", date="2026-06-15"),
            timestamp=None,
        )
    )
    assert case.patient.age == 65


@pytest.mark.parametrize(
    ("entries", "field", "expected"),
    [
        (
            [observation("bili", "1975-2", 1.1, "mg")],
            "Bundle.entry[2].resource.valueQuantity.code",
            "one of mg/dL, umol/L",
        ),
        ([observation("bili", "1975-2", 1.1)], "Bundle.entry[2].resource.valueQuantity.code", "one of mg/dL, umol/L"),
        ([observation("L1", "21889-1", 2.4, "in")], "Bundle.entry[2].resource.valueQuantity.code", "mm or cm"),
        ([observation("plt", "777-3", 0, "10*9/L")], "labs.platelets.value", "greater than 0"),
        (
            [observation("bili", "1975-2", "abc", "mg/dL")],
            "Bundle.entry[2].resource.valueQuantity.value",
            "valid FHIR R4",
        ),
        ([{"resource": {"resourceType": "Patient", "id": "q"}}], "Bundle.entry", "exactly one Patient"),
        ([condition("met", ICD10, "C78.7")], "Bundle.entry", "HCC or liver metastasis, not both"),
    ],
)
def test_bad_bundles_name_the_field(entries, field, expected):
    with pytest.raises(InputError) as raised:
        case_from_bundle(bundle(condition("hcc", ICD10, "C22.0"), *entries))
    assert raised.value.field == f"bundle: {field}" and expected in raised.value.expected


def test_bundle_without_a_tumour_is_refused():
    with pytest.raises(InputError, match="Condition coding the liver tumour"):
        case_from_bundle(bundle(observation("bili", "1975-2", 1.1, "mg/dL")))


def test_unknown_resource_type_is_refused():
    with pytest.raises(InputError, match="an R4 resource type"):
        case_from_bundle(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Nonsense"}}]}
        )


def test_read_case_file_detects_bundles_by_content(tmp_path):
    document = bundle(*BASELINE)
    path = tmp_path / "record.txt"  # not named .json: the content decides
    path.write_text(json.dumps(document))
    case, unused = read_case_file(path)
    assert case.case_id == "record" and case.labs == make_case().labs and unused == []


def test_bundled_example_bundle():
    case, unused = read_case_file(EXAMPLES / "hcc_fhir_bundle.json")
    assert case.diagnosis.type == "hcc" and case.patient.age == 64 and case.labs.platelets.canonical == 140
    assert any("Observation/haemoglobin" in u for u in unused) and any("platelets-old" in u for u in unused)
