"""The case model: what is accepted, and that every kind of bad input names its field path."""

from pathlib import Path

import pytest
import yaml
from support.cases import DELETE, case_document, make_case

from cryoplan.case import load_case, parse_case
from cryoplan.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "cryoplan" / "examples"


def test_baseline_case_parses_with_units_kept():
    case = make_case()
    assert case.labs.bilirubin.unit == "mg/dL" and case.labs.bilirubin.canonical == 1.1
    assert case.lesions[0].id == "L1"


def test_si_units_are_converted_to_canonical():
    case = make_case(
        labs__bilirubin={"value": 34.2, "unit": "µmol/L"},
        labs__albumin={"value": 35, "unit": "g/L"},
        labs__creatinine={"value": 176.8, "unit": "umol/L"},
        labs__platelets={"value": 50000, "unit": "/uL"},
    )
    assert (
        case.labs.bilirubin.canonical,
        case.labs.albumin.canonical,
        case.labs.creatinine.canonical,
        case.labs.platelets.canonical,
    ) == (2.0, 3.5, 2.0, 50.0)
    assert case.labs.bilirubin.to("umol/L") == 34.2


def test_optional_sections_may_be_absent():
    case = parse_case({"schema_version": 1, "diagnosis": {"type": "colorectal_metastasis"}})
    assert case.labs.bilirubin is None and case.lesions == [] and case.patient.ecog is None
    assert case.labs.dialysis_twice_past_week is False


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"labs.bilirubin": {"value": 1.1}}, "labs.bilirubin.unit", "required"),
        ({"labs.bilirubin": {"value": 1.1, "unit": "mg"}}, "labs.bilirubin.unit", "one of mg/dL, umol/L"),
        ({"labs.albumin": {"value": 39, "unit": "umol/L"}}, "labs.albumin.unit", "one of g/dL, g/L"),
        ({"labs.platelets": {"value": 140, "unit": None}}, "labs.platelets.unit", "one of 10^9/L, /uL"),
        ({"labs.bilirubin": {"value": "1.1", "unit": "mg/dL"}}, "labs.bilirubin.value", "a valid number"),
        ({"labs.bilirubin": 1.1}, "labs.bilirubin", "Bilirubin"),
        ({"patient.age": "64"}, "patient.age", "a valid integer"),
        ({"diagnosis.cirrhosis": "yes"}, "diagnosis.cirrhosis", "a valid boolean"),
        ({"labs.creatinine": {"value": -0.9, "unit": "mg/dL"}}, "labs.creatinine.value", "greater than 0"),
        ({"labs.inr": 0.4}, "labs.inr", "greater than or equal to 0.5"),
        ({"labs.inr": float("nan")}, "labs.inr", "finite"),
        ({"labs.prothrombin_time_prolonged_s": -1}, "labs.prothrombin_time_prolonged_s", "greater than or equal to 0"),
        ({"labs.platelets": {"value": 0, "unit": "10^9/L"}}, "labs.platelets.value", "greater than 0"),
        ({"patient.ecog": 7}, "patient.ecog", "less than or equal to 5"),
        ({"patient.ecog": -1}, "patient.ecog", "greater than or equal to 0"),
        ({"patient.sex": "m"}, "patient.sex", "'male' or 'female'"),
        ({"clinical.encephalopathy_grade": 5}, "clinical.encephalopathy_grade", "less than or equal to 4"),
        ({"clinical.ascites": "severe"}, "clinical.ascites", "'none', 'mild' or 'moderate_severe'"),
        ({"lesions.0.diameter_mm": 0}, "lesions[0].diameter_mm", "greater than 0"),
        (
            {"lesions.0.distance_to_bile_duct_mm": -2},
            "lesions[0].distance_to_bile_duct_mm",
            "greater than or equal to 0",
        ),
        ({"lesions.0.segment": 9}, "lesions[0].segment", "less than or equal to 8"),
        ({"diagnosis.type": "cholangiocarcinoma"}, "diagnosis.type", "'hcc'"),
        ({"diagnosis": DELETE}, "diagnosis", "required"),
        ({"schema_version": 2}, "schema_version", "1"),
        ({"labs.bilirubn": {"value": 1, "unit": "mg/dL"}}, "labs.bilirubn", "no such field"),
        ({"prior_treatments": ["chemo"]}, "prior_treatments[0]", "'tace'"),
        # contradictory fields
        ({"labs.prothrombin_time_prolonged_s": 8.0}, "labs", "contradict"),  # INR 1.1 (1 point) with 8 s (3 points)
        (
            {"lesions": [{"id": "L1", "diameter_mm": 20}, {"id": "L1", "diameter_mm": 12}]},
            "lesions",
            "unique lesion ids",
        ),
        ({"diagnosis.liver_disease": "none"}, "diagnosis", "contradict"),  # cirrhosis true with no liver disease
    ],
)
def test_bad_input_names_the_field(changes, field, expected):
    with pytest.raises(InputError) as raised:
        parse_case(case_document(**changes))
    assert raised.value.field == field
    assert expected in raised.value.expected


def test_inr_and_prothrombin_in_adjacent_bands_are_accepted_and_inr_is_used():
    case = make_case(labs__inr=1.6, labs__prothrombin_time_prolonged_s=4.5)
    assert case.labs.inr == 1.6
    with pytest.raises(InputError, match="contradict"):
        make_case(labs__inr=2.4, labs__prothrombin_time_prolonged_s=3.0)


def test_source_prefixes_the_field_path():
    with pytest.raises(InputError) as raised:
        parse_case(case_document(patient__ecog=7), source="a.yaml")
    assert raised.value.field == "a.yaml: patient.ecog"


def test_a_document_that_is_not_a_mapping_is_refused():
    with pytest.raises(InputError, match="a case document"):
        parse_case(["not", "a", "case"])


def test_imaging_paths_resolve_against_the_case_file(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "case.yaml").write_text(
        "schema_version: 1\ndiagnosis: {type: hcc}\n"
        "imaging: {image: ct/ct.nii.gz, labels: seg.nii.gz, label_preset: totalsegmentator, labels_map: {liver: 5}}\n"
    )
    imaging = load_case(folder / "case.yaml").imaging
    assert imaging.image == (folder / "ct" / "ct.nii.gz").resolve()
    assert imaging.labels == (folder / "seg.nii.gz").resolve()
    assert imaging.labels_map == {"liver": 5}
    (folder / "masks.yaml").write_text(
        "schema_version: 1\ndiagnosis: {type: hcc}\nimaging: {image: /data/ct.nii.gz, masks: {tumour: t.nii.gz}}\n"
    )
    imaging = load_case(folder / "masks.yaml").imaging
    assert imaging.image == Path("/data/ct.nii.gz") and imaging.masks == {"tumour": (folder / "t.nii.gz").resolve()}


@pytest.mark.parametrize(
    ("imaging", "expected"),
    [
        ({"image": "ct.nii.gz", "labels_map": {"liver": 1}}, "labels (the label image)"),
        ({"labels": "s.nii.gz"}, "required"),
        ({"image": "ct.nii.gz", "entries": {"L1": [1.0, 2.0]}}, "[x, y, z] in LPS mm (entries.L1"),
        ({"image": "ct.nii.gz", "entries": {"L1": [1.0, "2", 3.0]}}, "[x, y, z] in LPS mm"),
        ({"image": "ct.nii.gz", "entries": {"L1": [1.0, float("inf"), 3.0]}}, "[x, y, z] in LPS mm"),
        ({"image": "ct.nii.gz", "entries": {"L1": [True, 2.0, 3.0]}}, "[x, y, z] in LPS mm"),
        ({"image": "ct.nii.gz", "min_lesion_diameter_mm": -1}, "greater than or equal to 0"),
        ({"image": "ct.nii.gz", "labels": "s.nii.gz", "label_preset": "totalseg"}, "'totalsegmentator'"),
    ],
)
def test_contradictory_imaging_sections_are_refused(imaging, expected):
    with pytest.raises(InputError) as raised:
        parse_case(case_document(imaging=imaging))
    assert raised.value.field.startswith("imaging") and expected in raised.value.expected


def test_masks_with_an_organ_label_map_and_entry_points(tmp_path):
    (tmp_path / "case.yaml").write_text(
        "schema_version: 1\ndiagnosis: {type: hcc}\nimaging: {image: ct.nii.gz, labels: seg.nii.gz, "
        "label_preset: totalsegmentator, masks: {tumour: t.nii.gz}, entries: {L1: [-80, -40.5, 12]}, "
        "min_lesion_diameter_mm: 8}\n"
    )
    imaging = load_case(tmp_path / "case.yaml").imaging
    assert imaging.masks == {"tumour": (tmp_path / "t.nii.gz").resolve()}
    assert imaging.labels == (tmp_path / "seg.nii.gz").resolve() and imaging.label_preset == "totalsegmentator"
    assert imaging.entries == {"L1": [-80.0, -40.5, 12.0]} and imaging.min_lesion_diameter_mm == 8.0


def test_a_lesion_measured_below_one_voxel_may_measure_zero():
    lesion = {"id": "L9", "diameter_mm": 0.0, "resolution_mm": 5.0, "below_min_size": True}
    case = parse_case(case_document(lesions=[lesion]))
    assert case.lesions[0].diameter_mm == 0.0 and case.lesions[0].below_min_size
    with pytest.raises(InputError) as raised:
        parse_case(case_document(lesions=[{"id": "L9", "diameter_mm": 0.0}]))
    assert raised.value.field == "lesions[0].diameter_mm" and "greater than 0" in raised.value.expected


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match="readable"):
        load_case(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match="readable UTF-8"):
        load_case(binary)
    broken = tmp_path / "broken.yaml"
    broken.write_text("schema_version: 1\ndiagnosis: {type: hcc\n")
    with pytest.raises(InputError, match="valid YAML"):
        load_case(broken)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"schema_version": 1,')
    with pytest.raises(InputError, match="valid JSON"):
        load_case(broken_json)


def test_every_bundled_case_file_loads():
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert len(names) >= 5
    for name in names:
        raw = yaml.safe_load((EXAMPLES / name).read_text())
        case = load_case(EXAMPLES / name)
        # Nothing of the file is dropped on the way in: its lesions, in order, and the patient as written.
        assert [lesion.id for lesion in case.lesions] == [lesion["id"] for lesion in raw.get("lesions") or []], name
        assert (case.patient.age, case.patient.sex) == (raw["patient"]["age"], raw["patient"].get("sex")), name


def test_an_impossible_lesion_diameter_is_refused_naming_the_field():
    document = case_document()
    document["lesions"] = [{"id": "L1", "diameter_mm": 1e308}]
    with pytest.raises(InputError, match=r"lesions\[0\]\.diameter_mm"):
        parse_case(document)
