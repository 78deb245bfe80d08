"""FHIR bundles as EHRs export them: one bundle per everyday variation, each picking the right value."""

import pytest
from support.cases import make_case
from support.fhir import BASELINE, EXAMPLES, ICD10, SNOMED, bundle, condition, observation

from cryoplan.clinical import assess, assess_record, read_case_record
from cryoplan.clinical.fhir import case_from_bundle
from cryoplan.errors import InputError

HCC = condition("hcc", ICD10, "C22.0")
SEVERITY = {"mild": "255604002", "moderate": "6736007", "severe": "24484000", "absent": "2667000"}


def snomed_concept(code):
    return {"coding": [{"system": SNOMED, "code": code}]}


def no_ascites_no_encephalopathy():
    ascites = condition("asc", SNOMED, "389026000", verificationStatus={"coding": [{"code": "refuted"}]})
    grade = observation("he", "", None)
    grade["resource"]["code"] = snomed_concept("13920009")
    grade["resource"]["valueInteger"] = 0
    return [ascites, grade]


def read(*entries, **options):
    return case_from_bundle(bundle(*entries, **options))


def test_instants_are_compared_across_time_zones():
    # 10:00 in Tokyo is 01:00 UTC, four hours before 05:00 UTC: the 05:00Z count is the latest.
    record = read(
        HCC,
        observation("plt-tokyo", "777-3", 200, "10*9/L", date="2026-02-27T10:00:00+09:00"),
        observation("plt-utc", "777-3", 60, "10*9/L", date="2026-02-27T05:00:00Z"),
    )
    assert record.case.labs.platelets.canonical == 60
    assert any("plt-tokyo" in u and "superseded" in u for u in record.unused)


def test_effective_period_counts_by_its_end():
    period = observation("bili-period", "1975-2", 2.4, "mg/dL", date=None)
    period["resource"].pop("effectiveDateTime")
    period["resource"]["effectivePeriod"] = {"start": "2026-02-10", "end": "2026-02-25T12:00:00Z"}
    older = observation("bili-point", "1975-2", 1.0, "mg/dL", date="2026-02-20T08:00:00Z")
    assert read(HCC, period, older).case.labs.bilirubin.canonical == 2.4
    assert read(HCC, older, period).case.labs.bilirubin.canonical == 2.4


def test_issued_stands_in_for_a_missing_effective_time():
    issued = observation("na-issued", "2951-2", 128, "mmol/L")
    issued["resource"].pop("effectiveDateTime")
    issued["resource"]["issued"] = "2026-03-01T09:00:00+01:00"
    assert read(HCC, observation("na", "2951-2", 139, "mmol/L"), issued).case.labs.sodium.canonical == 128


@pytest.mark.parametrize(("born", "age", "noted"), [("1961", 64, True), ("1961-06", 64, False), ("1961-02", 65, False)])
def test_partial_birth_dates(born, age, noted):
    document = bundle(HCC)  # timestamp 2026-03-02
    document["entry"][0]["resource"]["birthDate"] = born
    record = case_from_bundle(document)
    assert record.case.patient.age == age
    assert any("birthDate" in note and "64 or 65" in note for note in record.notes) is noted


def test_a_comparator_is_a_bound_enough_for_child_pugh():
    entries = [e for e in BASELINE if e["resource"]["id"] != "bili"]
    below = observation("bili", "1975-2", 0.2, "mg/dL")
    below["resource"]["valueQuantity"]["comparator"] = "<"
    record = read(*entries, below, *no_ascites_no_encephalopathy())
    assert record.case.labs.bilirubin is None and record.lab_bounds["bilirubin"].comparator == "<"
    result = assess(record.case, lab_bounds=record.lab_bounds)
    exact = assess(make_case(**{"labs.bilirubin": {"value": 0.1, "unit": "mg/dL"}}))
    assert result.child_pugh == exact.child_pugh and result.child_pugh.components["bilirubin"] == 1
    assert result.meld == exact.meld  # bilirubin below 1 mg/dL counts as 1 in every MELD
    assert result.albi is None  # ALBI takes the logarithm of the value itself
    row = next(c for c in result.criteria if c.id == "bilirubin")
    assert (row.value, row.status) == ("<0.2", "preferred")
    assert "labs.bilirubin (a bound: <0.2 mg/dL)" in result.missing_inputs


def test_a_bound_across_a_band_edge_leaves_the_score_undetermined():
    entries = [e for e in BASELINE if e["resource"]["id"] != "bili"]
    above = observation("bili", "1975-2", 1.5, "mg/dL")
    above["resource"]["valueQuantity"]["comparator"] = ">"
    record = read(*entries, above, *no_ascites_no_encephalopathy())
    result = assess(record.case, lab_bounds=record.lab_bounds)
    assert result.child_pugh is None and result.meld.meld is None
    row = next(c for c in result.criteria if c.id == "bilirubin")
    assert (row.value, row.status) == (">1.5", "unknown") and result.verdict == "mdt_review"


def test_platelets_above_a_bound_are_enough():
    bound = observation("plt", "777-3", 400, "10*3/uL")
    bound["resource"]["valueQuantity"]["comparator"] = ">="
    record = read(*[e for e in BASELINE if e["resource"]["id"] != "plt"], bound, *no_ascites_no_encephalopathy())
    result = assess_record(record)
    row = next(c for c in result.criteria if c.id == "platelets")
    assert (row.value, row.status) == (">=400", "preferred")
    assert not any(m.startswith("labs.platelets") for m in result.missing_inputs)


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [("10*3/mm3", 140, 140), ("10*9/L", 140, 140), ("10*3/uL", 45, 45), ("/mm3", 90_000, 90), ("/uL", 51_000, 51)],
)
def test_ucum_platelet_units(unit, value, expected):
    assert read(HCC, observation("plt", "777-3", value, unit)).case.labs.platelets.canonical == expected


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "analyte", "expected"),
    [
        ("14631-6", 34.2, "umol/L", "bilirubin", 2.0),
        ("42719-5", 1.4, "mg/dL", "bilirubin", 1.4),
        ("61151-7", 38, "g/L", "albumin", 3.8),
        ("61152-5", 3.1, "g/dL", "albumin", 3.1),
        ("14682-9", 88.4, "umol/L", "creatinine", 1.0),
        ("38483-4", 1.2, "mg/dL", "creatinine", 1.2),
        ("26515-7", 75, "10*3/uL", "platelets", 75),
        ("778-1", 40, "10*9/L", "platelets", 40),
        ("2947-0", 131, "mmol/L", "sodium", 131),
    ],
)
def test_alternative_loinc_codes(loinc, value, unit, analyte, expected):
    labs = read(HCC, observation("lab", loinc, value, unit)).case.labs
    assert getattr(labs, analyte).canonical == expected


@pytest.mark.parametrize("loinc", ["34714-6", "46418-0", "6301-6"])
def test_alternative_inr_codes(loinc):
    assert read(HCC, observation("inr", loinc, 1.8, "{INR}")).case.labs.inr == 1.8


def test_afp_is_recognised_and_listed_as_not_used():
    record = read(HCC, observation("afp", "1834-1", 12, "ng/mL"))
    assert any("Observation/afp" in u and "alpha-fetoprotein" in u for u in record.unused)


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (ICD10, "C220", "hcc"),
        (ICD10, "C22.0", "hcc"),
        (SNOMED, "109841003", "hcc"),
        (SNOMED, "25370001", "hcc"),
        (ICD10, "C787", "other_metastasis"),
        (SNOMED, "94381002", "other_metastasis"),
    ],
)
def test_tumour_codes(system, code, expected):
    assert read(condition("t", system, code)).case.diagnosis.type == expected


def test_icd10_without_dots_for_cirrhosis_and_primary():
    record = read(condition("met", ICD10, "C787"), condition("crc", ICD10, "C187"), condition("cir", ICD10, "K7460"))
    assert (record.case.diagnosis.type, record.case.diagnosis.cirrhosis) == ("colorectal_metastasis", True)


@pytest.mark.parametrize(
    "status",
    [
        {"clinicalStatus": {"coding": [{"code": "resolved"}]}},
        {"clinicalStatus": {"coding": [{"code": "remission"}]}},
        {"verificationStatus": {"coding": [{"code": "provisional"}]}},
        {"verificationStatus": {"coding": [{"code": "entered-in-error"}]}},
    ],
)
def test_condition_statuses_are_honoured(status):
    record = read(condition("old-met", SNOMED, "94381002", **status), condition("hcc", SNOMED, "109841003"))
    assert record.case.diagnosis.type == "hcc"
    assert any("Condition/old-met" in u and "status" in u for u in record.unused)


def test_data_absent_reason_falls_back_to_the_previous_value():
    latest = observation("alb-new", "1751-7", None, date="2026-03-01", dataAbsentReason={"coding": [{"code": "error"}]})
    record = read(HCC, observation("alb-old", "1751-7", 3.2, "g/dL", date="2026-02-01"), latest)
    assert record.case.labs.albumin.canonical == 3.2
    assert any("alb-new" in n and "dataAbsentReason error" in n and "alb-old" in n for n in record.notes)
    record = read(HCC, latest)
    assert record.case.labs.albumin is None and any("stays missing" in n for n in record.notes)


def test_ascites_and_encephalopathy_give_child_pugh():
    ascites = condition("asc", ICD10, "R18.8", severity=snomed_concept(SEVERITY["mild"]))
    grade = observation("he", "", None)
    grade["resource"]["code"] = snomed_concept("13920009")
    grade["resource"]["valueInteger"] = 2
    record = read(*BASELINE, ascites, grade)
    assert (record.case.clinical.ascites, record.case.clinical.encephalopathy_grade) == ("mild", 2)
    result = assess_record(record)
    assert result.child_pugh.label == "B7" and "clinical.ascites" not in result.missing_inputs


def test_absence_of_ascites_and_encephalopathy():
    refuted = condition("asc", SNOMED, "389026000", verificationStatus={"coding": [{"code": "refuted"}]})
    absent = observation("he", "", None)
    absent["resource"]["code"] = snomed_concept("13920009")
    absent["resource"]["valueCodeableConcept"] = snomed_concept(SEVERITY["absent"])
    record = read(*BASELINE, refuted, absent)
    assert (record.case.clinical.ascites, record.case.clinical.encephalopathy_grade) == ("none", 0)
    assert assess_record(record).child_pugh == assess(make_case()).child_pugh  # A5, as the case file


def test_severe_encephalopathy_condition_and_ascites_without_severity():
    he = condition("he", ICD10, "K76.82", severity=snomed_concept(SEVERITY["severe"]))
    asc = condition("asc", SNOMED, "389026000")
    record = read(HCC, he, asc)
    assert record.case.clinical.encephalopathy_grade == 3 and record.case.clinical.ascites is None
    assert any("Condition/asc" in n and "without a severity" in n for n in record.notes)
    assert any("West Haven grade 3" in n for n in record.notes)


def test_a_bundle_without_a_patient_is_refused():
    document = bundle(HCC)
    document["entry"] = document["entry"][1:]
    with pytest.raises(InputError) as raised:
        case_from_bundle(document)
    assert raised.value.field == "bundle: Bundle.entry" and "exactly one Patient" in raised.value.expected


def test_the_example_bundle_gives_child_pugh():
    result = assess_record(read_case_record(EXAMPLES / "hcc_fhir_bundle.json"))
    assert result.child_pugh.label == "A5" and not any(m.startswith("clinical.") for m in result.missing_inputs)


def test_a_bound_in_si_units_is_shown_in_the_criterion_unit():
    below = observation("bili", "14631-6", 5, "umol/L")
    below["resource"]["valueQuantity"]["comparator"] = "<"
    record = read(*[e for e in BASELINE if e["resource"]["id"] != "bili"], below, *no_ascites_no_encephalopathy())
    result = assess_record(record)
    row = next(c for c in result.criteria if c.id == "bilirubin")
    assert (row.value, row.unit, row.status) == ("<0.2924", "mg/dL", "preferred")  # 5 / 17.1 mg/dL
    assert result.child_pugh.label == "A5" and "labs.bilirubin (a bound: <5 umol/L)" in result.missing_inputs
