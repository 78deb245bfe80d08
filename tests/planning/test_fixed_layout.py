"""A hand-placed probe layout planned as given (`cryoplan.planning.fixed_layout`), on set 02's CT and labels with a
22 mm tumour written into its liver: the probes stay where they were put, their coverage is that of the
simulated temperatures, moving them away loses coverage, and a path through a vessel is flagged."""

from __future__ import annotations

import numpy as np
import pytest
from support.service import CASE_DOCUMENT
from support.set02_tumour import LABELS_MAP, TUMOUR_LABEL, labels_with_tumour

from cryoplan.case import parse_case
from cryoplan.errors import InputError
from cryoplan.imaging.io import read_labels
from cryoplan.planning.fixed_layout import EDITED_LAYOUT_NOTE, GivenProbe, given_probes, plan_fixed_layout
from cryoplan.planning.settings import PlanSettings

pytestmark = pytest.mark.slow
SETTINGS = PlanSettings(grid_mm=2.0)
# Probes inserted from the patient's right, slightly cranially, towards the tumour, tips 5 mm past its centre: a
# direction between the ribs that keeps every clearance (the one the optimiser chooses for this case).
INSERTION = np.array([0.9854, -0.083, 0.1487]) / np.linalg.norm([0.9854, -0.083, 0.1487])
PATH_MM = 80.0


@pytest.fixture(scope="module")
def set02_case(shared_data, tmp_path_factory):
    data = shared_data / "02_totalseg_ct_sm_vessels"
    labels_path = tmp_path_factory.mktemp("fixed") / "labels_with_tumour.nii.gz"
    labels_with_tumour(data / "example_seg.nii.gz", labels_path)
    labels = read_labels(labels_path)
    document = {
        **CASE_DOCUMENT,
        "imaging": {"image": str(data / "example_ct_sm.nii.gz"), "labels": str(labels_path), "labels_map": LABELS_MAP},
    }
    return parse_case(document, "case"), labels


def tumour_centre(labels) -> np.ndarray:
    return labels.index_to_lps(np.argwhere(np.asarray(labels.array) == TUMOUR_LABEL)).mean(axis=0)


def triangle(centre: np.ndarray, radius_mm: float = 7.0, shift=(0.0, 0.0, 0.0)) -> list[GivenProbe]:
    """Three 17G rods in a triangle of `radius_mm` around the tumour's centre, parallel to INSERTION."""
    probes = []
    for angle in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
        across = np.cos(angle) * np.cross(INSERTION, [0.0, 0.0, 1.0]) + np.sin(angle) * np.array([0.0, 0.0, 1.0])
        tip = centre + 5.0 * INSERTION + radius_mm * across / np.linalg.norm(across) + shift
        entry = tip - PATH_MM * INSERTION
        probes.append(GivenProbe("17g-rod", tuple(tip), tuple(entry)))
    return probes


def test_the_probes_stay_where_they_were_put_and_are_judged(set02_case):
    case, labels = set02_case
    centre = tumour_centre(labels)
    given = triangle(centre)
    plan = plan_fixed_layout(case, given, 10.0, settings=SETTINGS)
    assert plan.notes == [EDITED_LAYOUT_NOTE]
    (unit,) = plan.units
    for probe, planned in zip(given, unit.candidate.probes, strict=True):
        assert np.allclose(planned.tip_lps_mm, probe.tip_lps_mm) and np.allclose(
            planned.entry_lps_mm, probe.entry_lps_mm
        )
        assert np.allclose(planned.direction, INSERTION)
    # The coverage reported is that of the simulated minimum temperature over the tumour mask.
    (lesion,) = unit.coverage.lesions
    tumour = unit.lesion_masks[lesion.lesion_id]
    lethal = unit.result.min_temperature_c[tumour] <= SETTINGS.lethal_isotherm_c
    assert lesion.tumour_covered_pct == pytest.approx(100.0 * lethal.mean(), abs=0.01)
    assert lesion.tumour_covered_pct > 90.0  # three rods 7 mm around the centre of a 22 mm tumour freeze it
    assert not [r for r in unit.coverage.risks if r.code in ("unsafe_path", "entry_not_at_skin")], unit.coverage.risks
    assert unit.simulations[0]["layout"] == "edited" and unit.simulations[0]["freeze_minutes"] == 10.0
    assert plan.assessment is not None and plan.assessment["case_id"] == case.case_id

    # The same layout 25 mm off the tumour (cranially) covers less of it.
    away = plan_fixed_layout(case, triangle(centre, shift=(0.0, 0.0, 25.0)), 10.0, settings=SETTINGS)
    assert away.units[0].coverage.lesions[0].tumour_covered_pct < lesion.tumour_covered_pct - 20.0


def test_a_path_through_a_vessel_is_flagged_not_moved(set02_case):
    case, labels = set02_case
    centre = tumour_centre(labels)
    portal = labels.index_to_lps(np.argwhere(np.asarray(labels.array) == LABELS_MAP["portal_vein"]))
    # The portal vein voxel nearest the tumour's centre, and a path from beyond it through it to the tumour.
    through = portal[np.argmin(np.linalg.norm(portal - centre, axis=1))]
    tip = centre
    entry = tip + (through - tip) * (PATH_MM / np.linalg.norm(through - tip))
    probes = [*triangle(centre)[:2], GivenProbe("17g-rod", tuple(tip), tuple(entry))]
    plan = plan_fixed_layout(case, probes, 10.0, settings=SETTINGS)
    risks = [r for r in plan.units[0].coverage.risks if r.code == "unsafe_path"]
    assert len(risks) == 1 and risks[0].detail.startswith("P3: ") and "portal vein" in risks[0].detail, risks
    assert np.allclose(plan.units[0].candidate.probes[2].entry_lps_mm, entry)


def test_bad_layouts_name_the_field(set02_case):
    case, labels = set02_case
    with pytest.raises(InputError) as error:
        given_probes([{"type": "laser", "tip_lps_mm": [0, 0, 0], "entry_lps_mm": [0, 0, 80]}])
    assert error.value.field == "probes[0].type"
    with pytest.raises(InputError) as error:
        given_probes([{"type": "17g-rod", "tip_lps_mm": [0, 0, 0], "entry_lps_mm": [0, 0, 0.5]}])
    assert error.value.field == "probes[0].entry_lps_mm"
    with pytest.raises(InputError) as error:
        given_probes([{"type": "17g-rod", "tip_lps_mm": [0, "x", 0], "entry_lps_mm": [0, 0, 80]}])
    assert error.value.field == "probes[0].tip_lps_mm"
    with pytest.raises(InputError) as error:
        plan_fixed_layout(case, triangle(tumour_centre(labels)), 45.0, settings=SETTINGS)
    assert error.value.field == "freeze_minutes"
