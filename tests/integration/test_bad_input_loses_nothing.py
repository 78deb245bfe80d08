"""The three bad inputs hospitals send (a corrupt DICOM file in a series, a DICOM-SEG drawn on another series,
a FHIR bundle without a Patient) through every command that reads them: one line naming the problem, exit 2,
no traceback, and nothing lost: the other cases of the run are written, and outputs of an earlier run stay as
they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from support.cli import Completed

from cryoplan.imaging import Volume, write_dicom_seg, write_dicom_series

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "cryoplan" / "examples"


@pytest.fixture
def cryoplan(cryoplan_cli):
    """``cryoplan ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return cryoplan_cli


def one_line(done: Completed, *words: str) -> None:
    """Exit 2 with a single line on stderr that holds every one of `words`, and no traceback."""
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cryoplan: error: ") and "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of an interrupted atomic write under `folder`."""
    return [str(p) for p in folder.rglob("*.part")]


def _volume() -> Volume:
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    affine[:3, 3] = (-20.0, -20.0, -100.0)
    values = np.add.outer(np.add.outer(np.arange(24) * 3, np.arange(22) * 5), np.arange(8) * 7)
    return Volume(values.astype(np.int16), affine, "CT")


def _case(folder: Path, name: str, imaging: dict | None = None) -> Path:
    """hcc_eligible's clinical data, with `imaging` (or none)."""
    case = yaml.safe_load((EXAMPLES / "hcc_eligible.yaml").read_text())
    case.pop("imaging", None)
    if imaging is not None:
        case["imaging"] = imaging
    path = folder / name
    path.write_text(yaml.safe_dump(case))
    return path


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two series on one grid (a, b) and a SEG with a liver and a tumour drawn on a."""
    volume = _volume()
    write_dicom_series(volume, tmp_path / "a", seed=1)
    write_dicom_series(volume, tmp_path / "b", seed=2)
    tumour = np.zeros(volume.shape, bool)
    tumour[8:14, 8:14, 3:6] = True
    liver = np.zeros(volume.shape, bool)
    liver[3:20, 3:20, 1:7] = True
    write_dicom_seg({"liver": liver & ~tumour, "tumour": tumour}, tmp_path / "a", tmp_path / "seg_a.dcm", "on a")
    return tmp_path / "a", tmp_path / "b", tmp_path / "seg_a.dcm"


@pytest.mark.slow
def test_a_corrupt_file_in_a_series_keeps_the_earlier_inspection(series, tmp_path, cryoplan):
    image, _, seg = series
    out = tmp_path / "inspect"
    done = cryoplan("inspect", image, "--labels", seg, "-o", out)
    assert done.returncode == 0, done.stderr
    before = snapshot(out)
    assert "inspect.json" in before
    victim = sorted(image.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:700])  # truncated in transfer
    one_line(cryoplan("inspect", image, "--labels", seg, "-o", out), victim.name)
    assert snapshot(out) == before and not leftovers(tmp_path)


@pytest.mark.parametrize("end", ["first", "last"])
def test_a_corrupt_end_slice_is_named_not_dropped(series, tmp_path, end, cryoplan):
    image, _, seg = series
    # a slice at either end of the series: left out, it would shorten the volume without a word
    heights = {
        path: float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2]) for path in image.iterdir()
    }
    victim = (min if end == "first" else max)(heights, key=heights.__getitem__)
    victim.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)  # a preamble and garbage
    one_line(cryoplan("inspect", image, "--labels", seg, "-o", tmp_path / "out"), victim.name, "a readable DICOM file")
    assert not (tmp_path / "out").exists()


def test_a_corrupt_file_in_a_series_stops_the_plan_before_it_writes(series, tmp_path, cryoplan):
    image, _, seg = series
    victim = sorted(image.iterdir())[3]
    victim.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    case = _case(tmp_path, "case.yaml", {"image": str(image), "labels": str(seg)})
    out = tmp_path / "plan"
    out.mkdir()
    (out / "plan.json").write_text('{"schema_version": 1}\n')  # an earlier plan
    one_line(cryoplan("plan", case, "-o", out), victim.name)
    assert (out / "plan.json").read_text() == '{"schema_version": 1}\n' and not leftovers(tmp_path)


def test_a_seg_of_another_series_leaves_the_other_cases_assessed(series, tmp_path, cryoplan):
    _, other, seg = series
    good = _case(tmp_path, "good.yaml")
    bad = _case(tmp_path, "bad.yaml", {"image": str(other), "labels": str(seg)})
    target = tmp_path / "assessments.json"
    one_line(cryoplan("assess", good, bad, good, "-f", "json", "-o", target), "bad.yaml", "referencing series")
    assert [a["case_id"] for a in json.loads(target.read_text())] == ["good", "good"]


def test_a_seg_of_another_series_stops_the_plan_and_the_inspection(series, tmp_path, cryoplan):
    _, other, seg = series
    case = _case(tmp_path, "bad.yaml", {"image": str(other), "labels": str(seg)})
    one_line(cryoplan("plan", case, "-o", tmp_path / "plan"), "referencing series")
    one_line(cryoplan("inspect", other, "--labels", seg, "-o", tmp_path / "inspect"), "referencing series")
    assert not (tmp_path / "plan").exists() and not (tmp_path / "inspect").exists() and not leftovers(tmp_path)


@pytest.fixture
def no_patient(tmp_path: Path) -> Path:
    document = json.loads((EXAMPLES / "hcc_fhir_bundle.json").read_text())
    document["entry"] = [e for e in document["entry"] if e["resource"]["resourceType"] != "Patient"]
    path = tmp_path / "no_patient.json"
    path.write_text(json.dumps(document))
    return path


def test_a_bundle_without_a_patient_leaves_the_other_cases_assessed(no_patient, tmp_path, cryoplan):
    good = _case(tmp_path, "good.yaml")
    for output_format in ("json", "fhir"):
        target = tmp_path / f"out.{output_format}.json"
        done = cryoplan(
            "assess", good, no_patient, EXAMPLES / "hcc_fhir_bundle.json", "-f", output_format, "-o", target
        )
        one_line(done, "no_patient.json", "Bundle.entry", "exactly one Patient")
        written = json.loads(target.read_text())
        if output_format == "json":
            assert [a["case_id"] for a in written] == ["good", "hcc_fhir_bundle"]
        else:
            reports = [e["resource"] for e in written["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
            assert len(reports) == 2


def test_a_bundle_without_a_patient_stops_the_plan(no_patient, tmp_path, cryoplan):
    one_line(cryoplan("plan", no_patient, "-o", tmp_path / "plan"), "Bundle.entry", "exactly one Patient")
    assert not (tmp_path / "plan").exists() and not leftovers(tmp_path)


@pytest.mark.slow
def test_a_bundle_without_a_patient_is_one_row_of_a_batch(no_patient, tmp_path, cryoplan):
    good = _case(tmp_path, "good.yaml")
    out = tmp_path / "batch"
    done = cryoplan("batch", good, no_patient, EXAMPLES / "hcc_eligible.yaml", "-o", out, "--workers", "1")
    assert done.returncode == 2, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["cases"]
    assert [row["status"] for row in rows] == ["ok", "error", "ok"]
    assert "exactly one Patient" in rows[1]["error"] and rows[1]["outputs"] == []
    for row in (rows[0], rows[2]):
        assert all((out / output).is_file() for output in row["outputs"]) and row["outputs"]
