"""Every JSON document a command writes validates against the schema `cryoplan schema NAME` prints.

Each command runs for real (on a phantom, the examples or the shipped measurements); its output is checked
with `jsonschema` against the printed schema and with the pydantic model behind it. The models forbid keys
they do not name and require every key they do (the few optional ones are listed in `OPTIONAL_KEYS`), so a
writer that adds or drops a key fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter
from support.planning_synthetic import pre_and_intra

from cryoplan.imaging import write_nifti
from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.schemas import SCHEMAS, json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "cryoplan" / "examples"


@pytest.fixture
def cryoplan(cryoplan_cli):
    """``cryoplan ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return cryoplan_cli


@pytest.fixture
def check(cryoplan):
    """``check(name, document)``: `document` validates against the schema `cryoplan schema NAME` prints and
    against its model."""

    def published(name: str) -> dict:
        done = cryoplan("schema", name)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def check(name: str, document: object) -> None:
        jsonschema.Draft202012Validator(published(name)).validate(document)
        _, model = SCHEMAS[name]
        TypeAdapter(model).validate_python(document)

    return check


def objects(schema: dict) -> list[tuple[str, dict]]:
    """Every object schema of a document (the root and each definition) with its name."""
    found = [(schema["title"], schema)] if schema.get("type") == "object" else []
    return found + [(name, d) for name, d in schema.get("$defs", {}).items() if d.get("type") == "object"]


#: The keys a writer may leave out, by object: a check's probability of success (a robust plan only), and what
#: a measurement's setup states beyond its probe (as the published source gives it).
OPTIONAL_KEYS = {
    "CheckStep": {"probability_of_success"},
    "MeasurementSetup": {"count", "spacing_mm", "protocol", "flow_fraction", "vessel_mm"},
}


@pytest.mark.parametrize("name", [n for n in SCHEMAS if n != "case"])
def test_every_written_object_refuses_unknown_keys_and_requires_its_own(name):
    schema = json_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    for title, item in objects(schema):
        assert item["additionalProperties"] is False, title
        assert set(item["required"]) == set(item["properties"]) - OPTIONAL_KEYS.get(title, set()), title


@pytest.mark.parametrize("name", [n for n in SCHEMAS if n != "case"])
def test_a_document_with_an_extra_or_a_missing_key_is_refused(name):
    schema = json_schema(name)
    root = schema if schema["type"] == "object" else schema["$defs"][schema["items"]["$ref"].split("/")[-1]]
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors({"schema_version": 1, "unexpected_key": 1} if root is schema else [{}]))
    assert errors
    if root is schema:
        assert any("unexpected_key" in error.message for error in errors)
        missing = {error.message.split("'")[1] for error in errors if error.validator == "required"}
        assert missing == set(root["required"]) - {"schema_version"}


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory) -> Path:
    """A 14 mm HCC in a 2 mm phantom, as NIfTI, with a case file naming it (hcc_eligible's clinical data)."""
    folder = tmp_path_factory.mktemp("phantom")
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 14.0)], spacing_mm=2.0, seed=1)
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    case = yaml.safe_load((EXAMPLES / "hcc_eligible.yaml").read_text())
    case.pop("imaging", None)
    case["lesions"] = [{"id": "L1", "diameter_mm": 14}]
    case["imaging"] = {"image": "ct.nii.gz", "labels": "labels.nii.gz", "labels_map": phantom.label_map}
    (folder / "case.yaml").write_text(yaml.safe_dump(case))
    return folder / "case.yaml"


FAST_PLAN = ("--grid-mm", "2", "--freeze-minutes", "5", "--freezes", "1", "--spacing-mm", "10", "--max-probes", "2")


@pytest.mark.slow
def test_plan_json_matches_the_published_schema(phantom_case, tmp_path, cryoplan, check):
    out = tmp_path / "plan"
    done = cryoplan("plan", phantom_case, "-o", out, "-f", "json", "--uncertainty", "2", *FAST_PLAN)
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "plan.json").read_text())
    assert json.loads(done.stdout) == document
    # The optional parts are present, so that their shapes are checked too.
    assert document["assessment"] is not None and document["lesions"]
    lesion = document["lesions"][0]
    assert lesion["uncertainty"] is not None and lesion["imaging"] is not None
    assert lesion["probes"][0]["path"] is not None
    check("plan", document)


def test_inspect_json_matches_the_published_schema(phantom_case, tmp_path, cryoplan, check):
    folder = phantom_case.parent
    labels = yaml.safe_load(phantom_case.read_text())["imaging"]["labels_map"]
    options = [item for name, value in labels.items() for item in ("--label", f"{name}={value}")]
    out = tmp_path / "inspect"
    done = cryoplan(
        "inspect", folder / "ct.nii.gz", "--labels", folder / "labels.nii.gz", *options, "-o", out, "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "inspect.json").read_text())
    assert json.loads(done.stdout) == document and document["lesions"] and document["body"] is not None
    check("inspect", document)


def test_inspect_json_on_a_real_image_matches_the_published_schema(shared_data, tmp_path, cryoplan, check):
    lits = shared_data / "01_lits_resized_liver_tumour"
    done = cryoplan(
        "inspect",
        lits / "resized_liver.nii",
        "--labels",
        lits / "resized_mask.nii",
        "--label-preset",
        "liver_tumour",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["lesions"] and any(lesion["below_min_size"] for lesion in document["lesions"])
    check("inspect", document)


@pytest.mark.slow
def test_verify_margins_json_matches_the_published_schema(tmp_path, cryoplan, check):
    pre, tumour, intra, ice_centre, _, _ = pre_and_intra()
    write_nifti(pre, tmp_path / "pre.nii.gz")
    write_nifti(tumour, tmp_path / "tumour.nii.gz")
    write_nifti(intra, tmp_path / "intra.nii.gz")
    (tmp_path / "probes.json").write_text(json.dumps([{"type": "17g-rod", "tip_lps_mm": list(ice_centre)}]))
    out = tmp_path / "verify"
    done = cryoplan(
        "verify",
        "--tumour",
        tmp_path / "tumour.nii.gz",
        "--pre-image",
        tmp_path / "pre.nii.gz",
        "--intra-image",
        tmp_path / "intra.nii.gz",
        "--probes",
        tmp_path / "probes.json",
        "--lethal-depth-mm",
        "3",
        "-o",
        out,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "margins.json").read_text())
    assert document["registration"] is not None and document["where"]  # an insufficient margin, located
    check("margins", document)
    # With the probe's direction the simulation is re-fitted to the ice: the fit is reported (here a failed
    # one, the ice being larger than the probe makes, so the lethal zone falls back to the eroded ice).
    probe = {"type": "17g-rod", "tip_lps_mm": list(map(float, ice_centre)), "direction": [0.0, 0.0, 1.0]}
    (tmp_path / "probes.json").write_text(json.dumps([probe]))
    images = ["--tumour", tmp_path / "tumour.nii.gz", "--pre-image", tmp_path / "pre.nii.gz"]
    images += ["--intra-image", tmp_path / "intra.nii.gz", "--probes", tmp_path / "probes.json"]
    done = cryoplan("verify", *images, "--protocol", "freeze:5")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["fit"] is not None
    check("margins", document)


def test_isotherms_json_matches_the_published_schema(cryoplan, check):
    done = cryoplan(
        "isotherms",
        "--probe",
        "17g-rod",
        "--count",
        "2",
        "--protocol",
        "freeze:3",
        "--grid-mm",
        "2",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    check("isotherms", json.loads(done.stdout))


def test_simulation_summary_matches_the_published_schema(tmp_path, cryoplan, check):
    labels = np.ones((60, 60, 60), dtype=np.int16)
    labels[:, 36:42, 27:33] = 2  # a 6 mm vessel along x, 11–17 mm from the probe
    nib.save(nib.Nifti1Image(labels, np.diag([-1.0, -1.0, 1.0, 1.0])), str(tmp_path / "labels.nii.gz"))
    spec = {
        "labels": "labels.nii.gz",
        "tissues": {1: "liver"},
        "vessels": [{"label": 2, "diameter_mm": 6.0}],
        "probes": [{"probe": "17g-sphere", "tip_mm": [30.0, 25.0, 20.0], "direction": [0, 0, -1]}],
        "protocol": "freeze:2",
        "grid_mm": 1.0,
        "margin_mm": 15.0,  # the grid (tip and cooled shaft ± 15 mm) inside the 60 mm label volume
        "record_points": {"near": [30.0, 30.0, 30.0]},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    done = cryoplan("simulate", tmp_path / "spec.yaml", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert json.loads(done.stdout) == document and document["record_points"]
    check("simulation", document)


@pytest.mark.slow
def test_validation_json_matches_the_published_schema(tmp_path, cryoplan, check):
    done = cryoplan("validate", "--grid-mm", "3", "--format", "json", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert json.loads(done.stdout) == document and document["rows"]
    check("validation", document)


@pytest.mark.slow
def test_assessment_probes_and_batch_match_the_published_schemas(tmp_path, cryoplan, check):
    cases = sorted(str(p) for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json"))
    done = cryoplan("assess", *cases, "--format", "json")
    assert done.returncode == 0, done.stderr
    check("assessment", json.loads(done.stdout))
    done = cryoplan("probes", "--format", "json")
    assert done.returncode == 0, done.stderr
    check("probes", json.loads(done.stdout))
    done = cryoplan("batch", *cases[:2], tmp_path / "missing.yaml", "-o", tmp_path / "batch", "--workers", "1")
    assert done.returncode == 2, done.stderr  # one case failed; the others ran
    summary = json.loads((tmp_path / "batch" / "summary.json").read_text())
    assert summary["error_count"] == 1
    check("batch", summary)
    for row in summary["cases"]:
        for output in row["outputs"]:
            if output.endswith("assessment.json"):
                check("assessment", json.loads((tmp_path / "batch" / output).read_text()))
