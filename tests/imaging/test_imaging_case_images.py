"""A case file that names its images: lesions filled from them, typed values kept, disagreements flagged."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cryoplan.case import load_case
from cryoplan.imaging import write_nifti
from cryoplan.imaging.case_images import measure_case_lesions
from cryoplan.imaging.phantom import TumourSpec, make_phantom


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case")
    phantom = make_phantom(
        [TumourSpec((-40.0, -10.0, 0.0), 24.0), TumourSpec((25.0, -25.0, 20.0), 12.0)], spacing_mm=2.0
    )
    write_nifti(phantom.ct, folder / "images" / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "images" / "labels.nii.gz")
    return folder, phantom


def _gap_to_tubes_mm(phantom, tumour: TumourSpec, structures: tuple[str, ...]) -> float:
    """Surface-to-surface gap, by geometry, between a spherical tumour and the nearest of the phantom's tubes
    (capsules) of `structures`; negative where a tube runs through the sphere."""
    centre = np.asarray(tumour.centre_mm)
    gaps = []
    for tube in phantom.tubes:
        if tube.structure in structures:
            start, end = np.asarray(tube.start_mm), np.asarray(tube.end_mm)
            t = np.clip((centre - start) @ (end - start) / ((end - start) @ (end - start)), 0.0, 1.0)
            axis_distance = np.linalg.norm(centre - (start + t * (end - start)))
            gaps.append(axis_distance - tube.diameter_mm / 2 - tumour.diameter_mm / 2)
    return float(min(gaps))


def _case(folder, lesions, imaging):
    document = {"schema_version": 1, "diagnosis": {"type": "hcc"}, "lesions": lesions, "imaging": imaging}
    path = folder / "case.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_case(path)


def test_typed_values_are_kept_and_large_disagreements_flagged(images):
    folder, phantom = images
    labels_map = dict(phantom.label_map)
    case = _case(
        folder,
        [{"id": "L1", "diameter_mm": 30.0, "segment": 6}, {"id": "L9", "diameter_mm": 15.0}],
        {"image": "images/ct.nii.gz", "labels": "images/labels.nii.gz", "labels_map": labels_map},
    )
    lesions, flags = measure_case_lesions(case)
    by_id = {lesion["id"]: lesion for lesion in lesions}
    assert set(by_id) == {"L1", "L2", "L9"}
    assert by_id["L1"]["diameter_mm"] == 30.0  # typed, kept
    assert by_id["L1"]["segment"] == 6  # typed, kept
    # filled from the images: a portal branch runs through the 24 mm sphere, so the lesion abuts a vessel
    # (and a bile duct): 0 mm to within one 2 mm voxel
    assert _gap_to_tubes_mm(phantom, phantom.tumours[0], ("portal_vein", "hepatic_vein")) < 0
    assert _gap_to_tubes_mm(phantom, phantom.tumours[0], ("bile_duct",)) < 0
    assert by_id["L1"]["distance_to_major_vessel_mm"] == pytest.approx(0.0, abs=2.0)
    assert by_id["L1"]["distance_to_bile_duct_mm"] == pytest.approx(0.0, abs=2.0)
    assert by_id["L2"]["diameter_mm"] == pytest.approx(12.0, abs=2.0)  # found only in the images
    assert by_id["L9"] == {
        "id": "L9",
        "diameter_mm": 15.0,
        "segment": None,
        "distance_to_bile_duct_mm": None,
        "distance_to_major_vessel_mm": None,
    }
    assert any(f.startswith("lesions[0].diameter_mm: typed 30 mm") for f in flags)  # 24 mm measured
    assert any("L9" in f and "not found" in f for f in flags)
    assert len(flags) == 2  # no Couinaud map in a case file's imaging section: the typed segment stands


def test_agreement_within_3_mm_is_not_flagged_and_no_imaging_changes_nothing(images):
    folder, phantom = images
    case = _case(
        folder,
        [{"id": "L1", "diameter_mm": 22.0}],
        {"image": "images/ct.nii.gz", "labels": "images/labels.nii.gz", "label_preset": "liver_tumour"},
    )
    lesions, flags = measure_case_lesions(case)
    assert flags == [] and lesions[0]["diameter_mm"] == 22.0 and len(lesions) == 2
    bare = _case(folder, [{"id": "A", "diameter_mm": 22.0}], None)
    assert measure_case_lesions(bare) == ([bare.lesions[0].model_dump()], [])
