"""What the viewer is given: structures with distinct colours from a labels map or preset, the plan's
isotherm files by temperature, each probe once, and points turned from LPS into NiiVue's RAS."""

from __future__ import annotations

from cryoplan.imaging.anatomy import PRESETS
from cryoplan.service.routes.viewer_config import viewer_config


def test_structures_isotherms_probes_and_the_lesion_centre():
    plan = {
        "settings": {"lethal_isotherm_c": -20.0},
        "outputs": {"isotherms": ["isotherm_minus40c.nii.gz", "isotherm_0c.nii.gz", "isotherm_minus20c.nii.gz"]},
        "lesions": [
            {
                "imaging": {"centroid_lps_mm": [-34.4, -0.2, 42.1]},
                "probes": [{"tip_lps_mm": [1, 2, 3], "entry_lps_mm": [4, 5, 6]}],
            },
            {"imaging": {}, "probes": [{"tip_lps_mm": [1, 2, 3], "entry_lps_mm": [4, 5, 6]}]},  # shared probe
        ],
    }
    config = viewer_config({"imaging": {"labels_map": {"liver": 5, "tumour": 200, "ivc": 63}}}, plan, 7)
    assert [s["values"] for s in config["structures"]] == [[5], [200], [63]]
    assert len({tuple(s["colour"]) for s in config["structures"]}) == 3
    assert all(s["colour"] != [255, 0, 0] for s in config["structures"])  # red is the crosshair's
    assert [i["isotherm_c"] for i in config["isotherms"]] == [0.0, -20.0, -40.0]
    assert config["isotherms"][1]["label"] == "-20 °C isotherm (lethal)"
    assert config["isotherms"][0]["url"] == "/api/jobs/7/files/isotherm_0c.nii.gz"
    assert len({i["colourmap"] for i in config["isotherms"]}) == 3
    assert config["probes"] == [{"name": "P1", "type": None, "tip": [-1.0, -2.0, 3.0], "entry": [-4.0, -5.0, 6.0]}]
    assert config["lesion_centre_ras_mm"] == [34.4, 0.2, 42.1]
    assert config["tumour_values"] == [200]


def test_a_preset_lists_its_structures_each_value_once():
    config = viewer_config({"imaging": {"label_preset": "totalsegmentator"}}, None, None)
    names = [s["name"] for s in config["structures"]]
    assert names[: len(names)] == [n for n in PRESETS["totalsegmentator"] if n in names]
    values = [v for s in config["structures"] for v in s["values"]]
    assert len(values) == len(set(values))  # a value shared by two structures goes to the first
    assert config["isotherms"] == [] and config["probes"] == [] and config["lesion_centre_ras_mm"] is None
