"""`cryoplan verify` and `cryoplan plan` through the CLI's entry point: outputs, exit codes, bad input."""

import json

import pytest
from support.planning_synthetic import pre_and_intra

from cryoplan.imaging.io import write_nifti


@pytest.fixture
def run(cryoplan_cli):
    """``cryoplan ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return cryoplan_cli


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    pre, tumour, intra, ice_centre, known, _ = pre_and_intra()
    write_nifti(pre, folder / "pre.nii.gz")
    write_nifti(tumour, folder / "tumour.nii.gz")
    write_nifti(intra, folder / "intra.nii.gz")
    (folder / "probes.json").write_text(json.dumps([{"type": "17g-rod", "tip_lps_mm": list(ice_centre)}]))
    return folder, known


@pytest.mark.slow
def test_verify_writes_the_margin_report(images, tmp_path, run):
    folder, known = images
    out = tmp_path / "verify"
    result = run(
        "verify",
        "--tumour",
        folder / "tumour.nii.gz",
        "--pre-image",
        folder / "pre.nii.gz",
        "--intra-image",
        folder / "intra.nii.gz",
        "--probes",
        folder / "probes.json",
        "--lethal-depth-mm",
        "3",
        "--format",
        "json",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["registration"]["converged"] is True
    assert document["ice_min_margin_mm"] == pytest.approx(known, abs=1.0)
    assert document["lethal_min_margin_mm"] == pytest.approx(known - 3.0, abs=1.0)
    assert document["verdict"] == "insufficient"
    assert json.loads((out / "margins.json").read_text()) == document
    assert (out / "margin_map.png").stat().st_size > 10_000


def test_verify_bad_input_is_one_line_and_exit_2(images, tmp_path, run):
    folder, _ = images
    out = tmp_path / "never"
    result = run(
        "verify",
        "--tumour",
        folder / "missing.nii.gz",
        "--pre-image",
        folder / "pre.nii.gz",
        "--intra-image",
        folder / "intra.nii.gz",
        "--lethal-depth-mm",
        "3",
        "-o",
        out,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    (folder / "bad_probes.json").write_text('{"lesions": []}')
    result = run(
        "verify",
        "--tumour",
        folder / "tumour.nii.gz",
        "--pre-image",
        folder / "pre.nii.gz",
        "--intra-image",
        folder / "intra.nii.gz",
        "--probes",
        folder / "bad_probes.json",
        "-o",
        out,
    )
    assert result.returncode == 2
    assert "--probes" in result.stderr
    assert not out.exists()


def test_plan_refuses_an_impossible_protocol_and_a_case_without_images(tmp_path, run):
    case = tmp_path / "case.yaml"
    case.write_text("schema_version: 1\ndiagnosis: {type: hcc}\n")
    out = tmp_path / "plan"
    result = run("plan", case, "-o", out, "--freeze-minutes", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("cryoplan: error: freeze_minutes")
    result = run("plan", case, "-o", out)
    assert result.returncode == 2
    assert "imaging" in result.stderr
    assert not out.exists()
