"""The thermal commands through the CLI's entry point: output documents, and bad input → exit 2 with one line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import yaml

from cryoplan.thermal import PROBES


@pytest.fixture
def run_cli(cryoplan_cli):
    """``cryoplan ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return cryoplan_cli


def test_probes_json_lists_the_library_with_its_cooling(run_cli):
    done = run_cli("probes", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["schema_version"] == 1
    probes = document["probes"]
    assert len(probes) >= 5
    for probe in probes:
        assert {"id", "diameter_mm", "active_length_mm", "working_length_mm", "description", "source"} <= set(probe)
        assert probe["working_length_mm"] > probe["active_length_mm"] + probe["tip_offset_mm"]
        assert -273.15 < probe["cryogen_temperature_c"] < -100 and probe["heat_transfer_w_m2k"] > 0
        # the shaft the returning gas cools behind the active zone: the family's calibrated length
        cooling = PROBES[probe["id"]].cooling
        assert probe["proximal_cooled_length_mm"] == cooling.proximal_cooled_length_mm > 0
        assert probe["proximal_cooled_length_sd_mm"] == cooling.proximal_cooled_length_sd_mm
    table = run_cli("probes")
    first = PROBES[probes[0]["id"]].cooling.proximal_cooled_length_mm
    assert table.returncode == 0 and "cooled" in table.stdout and f"{first:.1f}" in table.stdout


def test_isotherms_json_with_fixed_surface_temperature(run_cli):
    done = run_cli(
        "isotherms",
        "--probe",
        "17g-sphere",
        "--medium",
        "gel",
        "--protocol",
        "freeze:2",
        "--probe-surface-temp",
        "-140",
        "--grid-mm",
        "1.0",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["schema_version"] == 1 and document["grid_mm"] == 1.0
    rows = {row["temperature_c"]: row for row in document["isotherms"]}
    assert set(rows) == {0.0, -20.0, -40.0}
    # Nested isotherms: colder ones are smaller in every direction; a single probe is round (width = depth).
    for warm, cold in ((0.0, -20.0), (-20.0, -40.0)):
        for key in ("length_mm", "width_mm", "depth_mm", "volume_ml"):
            assert rows[warm][key] > rows[cold][key]
    assert rows[0.0]["width_mm"] == pytest.approx(rows[0.0]["depth_mm"], abs=1.0)


@pytest.fixture
def label_spec(tmp_path):
    """A 60 mm liver cube (label 1) with a vessel along L (label 2), as NIfTI whose RAS affine makes voxel
    (i, j, k) the LPS point (i, j, k) mm."""
    labels = np.ones((60, 60, 60), dtype=np.int16)
    labels[:, 40:46, 27:33] = 2
    nib.save(nib.Nifti1Image(labels, np.diag([-1.0, -1.0, 1.0, 1.0])), str(tmp_path / "labels.nii.gz"))
    return tmp_path, labels


def write_spec(folder, **changes):
    spec = {
        "labels": "labels.nii.gz",
        "tissues": {1: "liver"},
        "vessels": [{"label": 2, "diameter_mm": 6.0}],
        # The tip low in the volume: the grid's margin surrounds the cooled shaft behind the active zone too.
        "probes": [{"probe": "17g-sphere", "tip_mm": [30.0, 25.0, 15.0], "direction": [0, 0, -1]}],
        "protocol": "freeze:2",
        "grid_mm": 1.0,
        "margin_mm": 15.0,
        "record_points": {"near": [30.0, 30.0, 30.0]},
    }
    spec.update(changes)
    import yaml

    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml"


@pytest.mark.slow
def test_simulate_writes_maps_masks_summary_and_figures(label_spec, run_cli):
    folder, _ = label_spec
    spec = write_spec(folder)
    done = run_cli("simulate", str(spec), "-o", str(folder / "out"))
    assert done.returncode == 0, done.stderr
    names = {p.name for p in (folder / "out").iterdir()}
    assert {
        "min_temperature.nii.gz",
        "isotherm_0c.nii.gz",
        "isotherm_minus20c.nii.gz",
        "isotherm_minus40c.nii.gz",
        "summary.json",
        "temperature_map.png",
        "temperature_history.png",
    } <= names
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["schema_version"] == 1
    image = nib.load(str(folder / "out" / "min_temperature.nii.gz"))
    data = np.asarray(image.dataobj)
    # The coldest voxel lies on the probe: map it back through the RAS affine to LPS.
    coldest = np.array(np.unravel_index(np.argmin(data), data.shape))
    ras = image.affine @ [*coldest, 1]
    lps = np.array([-ras[0], -ras[1], ras[2]])
    assert np.linalg.norm(lps[:2] - [30.0, 25.0]) < 2.0
    # Within the cooled segment: from the active zone's distal end (tip offset 2 mm) to the cooled shaft's end.
    sphere = PROBES["17g-sphere"]
    assert 15.0 + sphere.tip_offset_mm - 1 <= lps[2] <= 15.0 + sphere.tip_offset_mm + sphere.cooled_length_mm + 1


BAD_INPUTS = [
    (["isotherms", "--probe", "no-such-probe", "--format", "json"], "probe"),
    (["isotherms", "--probe", "17g-sphere", "--count", "2", "--spacing", "1.0", "--protocol", "freeze:1"], "probes[1]"),
    (["isotherms", "--probe", "17g-sphere", "--protocol", "freeze:-5"], "--protocol[0].minutes"),
]


@pytest.mark.parametrize("args, field", BAD_INPUTS)
def test_bad_isotherm_input_exits_2_with_one_line(args, field, run_cli):
    done = run_cli(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_unknown_medium_key_exits_2(tmp_path, run_cli):
    (tmp_path / "odd.yaml").write_text("conductivity_w_mk: {unfrozen: 0.5}\nviscosity: 3\n")
    done = run_cli("isotherms", "--probe", "17g-sphere", "--medium", str(tmp_path / "odd.yaml"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "viscosity" in done.stderr


@pytest.mark.parametrize(
    "change, field",
    [
        ({"probes": [{"probe": "17g-sphere", "tip_mm": [200.0, 0.0, 0.0], "direction": [0, 0, -1]}]}, "spec.probes"),
        (
            {"probes": [{"probe": "nope", "tip_mm": [30.0, 25.0, 25.0], "direction": [0, 0, -1]}]},
            "spec.probes[0].probe",
        ),
        ({"protocol": "freeze:-1"}, "spec.protocol[0].minutes"),
        ({"tissues": {1: {"latent_heat": 1}}}, "spec.tissues.1.medium.latent_heat"),
    ],
)
def test_bad_spec_exits_2_and_writes_nothing(label_spec, change, field, run_cli):
    folder, _ = label_spec
    spec = write_spec(folder, **change)
    done = run_cli("simulate", str(spec), "-o", str(folder / "out"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0]
    assert not (folder / "out").exists()


def test_nan_in_label_volume_exits_2(label_spec, run_cli):
    folder, labels = label_spec
    data = labels.astype(np.float32)
    data[5, 5, 5] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])), str(folder / "labels.nii.gz"))
    done = run_cli("simulate", str(write_spec(folder)), "-o", str(folder / "out"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "NaN" in done.stderr and "spec.labels" in done.stderr
    assert not (folder / "out").exists()


def one_line_error(done, field):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""


USER_PROBE = {
    "id": "user-3mm",
    "diameter_mm": 3.0,
    "active_length_mm": 30.0,
    "tip_offset_mm": 4.0,
    "working_length_mm": 200.0,
    "description": "a 3 mm probe",
}


def test_user_probe_file_is_simulated(tmp_path, run_cli):
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump([USER_PROBE]))
    done = run_cli("probes", "--probe-file", str(path), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "user-3mm" in {p["id"] for p in json.loads(done.stdout)["probes"]}
    done = run_cli(
        "isotherms", "--probe-file", str(path), "--probe", "user-3mm", "--protocol", "freeze:3", "--grid-mm", "2",
        "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["isotherms"][0]["width_mm"] > 0


@pytest.mark.parametrize(
    "change, field",
    [
        ({"diameter_mm": 50.0}, "probe_file[0].diameter_mm"),
        ({"diameter_mm": -1.0}, "probe_file[0].diameter_mm"),
        ({"active_length_mm": 0.0}, "probe_file[0].active_length_mm"),
        ({"working_length_mm": 30.0}, "probe_file[0]"),  # shorter than the tip offset plus the active zone
        ({"family": "nitrogen"}, "probe_file[0].family"),
        ({"heat_transfer_w_m2k": 5000.0}, "probe_file[0].heat_transfer_w_m2k"),  # cooling is the family's
        ({"id": "2.4mm"}, "probe_file[0].id"),  # already in the library, with another geometry
    ],
)
def test_non_physical_user_probe_exits_2_with_one_line(tmp_path, change, field, run_cli):
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump([{**USER_PROBE, **change}]))
    one_line_error(run_cli("probes", "--probe-file", str(path)), field)


@pytest.mark.parametrize("flow", ["1.5", "-0.2", "nan"])
def test_flow_fraction_outside_0_1_exits_2(flow, run_cli):
    done = run_cli("isotherms", "--probe", "17g-rod", "--protocol", f"freeze:5@{flow}")
    one_line_error(done, "--protocol[0].flow_fraction")


@pytest.mark.parametrize("key", ["perfusion", "blood_perfusion"])
def test_medium_without_perfusion_units_exits_2(tmp_path, key, run_cli):
    path = tmp_path / "medium.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", key: 0.001}))
    done = run_cli("isotherms", "--probe", "17g-rod", "--medium", str(path))
    one_line_error(done, f"medium (medium.yaml).{key}")
    assert "perfusion_1_s" in done.stderr and "perfusion_ml_min_kg" in done.stderr


def test_medium_perfusion_in_ml_min_kg_is_converted(tmp_path):
    from cryoplan.thermal.tissue import load_medium

    path = tmp_path / "medium.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "perfusion_ml_min_kg": 860.0, "density_kg_m3": {"unfrozen": 1079}}))
    assert load_medium(path).perfusion_1_s == pytest.approx(860.0 * 1079.0 * 1e-6 / 60.0)


def test_validate_rejects_an_unknown_format(run_cli):
    one_line_error(run_cli("validate", "--format", "xml"), "--format")
