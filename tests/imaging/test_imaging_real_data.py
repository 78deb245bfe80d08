"""The imaging readers and measurements on every set of the real test images (sets 01–06, found through the
`shared_data` fixture)."""

from __future__ import annotations

import json

import nibabel as nib
import nrrd
import numpy as np
import pytest

from cryoplan.imaging import ImagingWarning, Volume, read_labels, read_volume, segment_label_map
from cryoplan.imaging.anatomy import PRESETS, anatomy_from_labels, lesion_components, measure_lesions
from cryoplan.imaging.inspection import inspect_image
from cryoplan.imaging.io import orientation_code


def _labels_nibabel(path):
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.header.get_zooms()


def test_presets_match_the_totalsegmentator_label_table(shared_data):
    table = json.loads((shared_data / "totalsegmentator_labels.json").read_text())
    expected = {
        "totalsegmentator": (
            "total",
            {
                "liver": "liver",
                "gallbladder": "gallbladder",
                "aorta": "aorta",
                "ivc": "inferior_vena_cava",
                "portal_vein": "portal_vein_and_splenic_vein",
            },
        ),
        "totalsegmentator_mr": (
            "total_mr",
            {
                "liver": "liver",
                "gallbladder": "gallbladder",
                "aorta": "aorta",
                "ivc": "inferior_vena_cava",
                "portal_vein": "portal_vein_and_splenic_vein",
            },
        ),
    }
    for preset, (task, names) in expected.items():
        for structure, name in names.items():
            (value,) = PRESETS[preset][structure]
            assert table[task][str(value)] == name
        bones = {table[task][str(v)] for v in PRESETS[preset]["bone"]}
        assert all(
            n.startswith(
                ("vertebrae", "rib_", "sacrum", "sternum", "humerus", "scapula", "clavicula", "femur", "hip", "skull")
            )
            for n in bones
        )


@pytest.mark.parametrize(
    "folder, image, labels, preset, counts",
    [
        (
            "02_totalseg_ct_sm_vessels",
            "example_ct_sm.nii.gz",
            "example_seg.nii.gz",
            "totalsegmentator",
            {"liver": 38634, "ivc": 1368, "portal_vein": 901, "aorta": 997, "gallbladder": 1333},
        ),
        (
            "06_totalseg_mr_sm",
            "example_mr_sm.nii.gz",
            "example_seg_mr.nii.gz",
            "totalsegmentator_mr",
            {"liver": 18480, "ivc": 444, "portal_vein": 511, "aorta": 672},
        ),
    ],
)
def test_structure_volumes_are_voxel_count_times_voxel_volume(shared_data, folder, image, labels, preset, counts):
    document = inspect_image(shared_data / folder / image, labels=shared_data / folder / labels, label_preset=preset)
    raw, zooms = _labels_nibabel(shared_data / folder / labels)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    assert voxel_ml == pytest.approx(0.027)
    for structure, count in counts.items():
        (value,) = PRESETS[preset][structure]
        assert np.count_nonzero(raw == value) == count  # the manifest's numbers
        assert document["structures"][structure]["volume_ml"] == pytest.approx(count * voxel_ml, abs=1e-3)
    assert document["liver_volume_ml"] == pytest.approx(counts["liver"] * voxel_ml, abs=1e-3)
    assert document["image"]["spacing_mm"] == [3.0, 3.0, 3.0]


def test_set_02_is_read_as_ras_ct_with_barely_enhanced_vessels(shared_data):
    folder = shared_data / "02_totalseg_ct_sm_vessels"
    image = read_volume(folder / "example_ct_sm.nii.gz")
    labels = read_labels(folder / "example_seg.nii.gz", image)
    assert image.modality == "CT" and orientation_code(image.affine) == "RAS"
    assert 30 <= image.array[labels.array == 63].mean() <= 50  # IVC, manifest: about 36–42 HU


def test_set_06_lps_affine_gives_the_same_liver_centroid_as_its_ras_copy(shared_data, tmp_path):
    folder = shared_data / "06_totalseg_mr_sm"
    original = nib.load(folder / "example_seg_mr.nii.gz")
    assert nib.aff2axcodes(original.affine) == ("L", "P", "S")
    canonical = nib.as_closest_canonical(original)
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    nib.save(canonical, tmp_path / "ras.nii.gz")
    centroids = []
    for path in (folder / "example_seg_mr.nii.gz", tmp_path / "ras.nii.gz"):
        labels = read_labels(path)
        anatomy = anatomy_from_labels(labels, preset="totalsegmentator_mr")
        centroids.append(labels.index_to_lps(np.argwhere(anatomy.masks["liver"]).mean(axis=0)))
    assert orientation_code(read_labels(folder / "example_seg_mr.nii.gz").affine) == "LPS"
    assert np.allclose(centroids[0], centroids[1], atol=1e-6)
    # the liver lies on the patient's right: negative x in LPS
    assert centroids[0][0] < 0
    # and the LPS file's labels land on the RAS copy's grid exactly (reordered, not resampled)
    ras = read_labels(tmp_path / "ras.nii.gz")
    assert np.array_equal(read_labels(folder / "example_seg_mr.nii.gz", ras).array, ras.array)


def test_set_03_dicom_jpeg2000_series_lines_up_with_its_label_map(shared_data):
    folder = shared_data / "03_totalseg_dicom_ct_series"
    # its datasets leave SOPClassUID, SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID empty
    with pytest.warns(ImagingWarning, match="SOPClassUID, SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID"):
        image = read_volume(folder / "dicom")
    assert image.shape == (512, 512, 20) and image.modality == "CT"
    assert np.allclose(image.spacing_mm, [0.9765625, 0.9765625, 2.0])  # 3 mm thick every 2 mm: spacing 2
    labels = read_labels(folder / "example_seg_dicom.nii.gz", image)  # RAS label map, j axis reversed
    liver = labels.array == 5
    assert np.count_nonzero(liver) == 366708
    assert 80 <= image.array[liver].mean() <= 100
    # the same voxels read without reordering the j axis would be misplaced: far from liver values
    misplaced = np.asanyarray(nib.load(folder / "example_seg_dicom.nii.gz").dataobj) == 5
    assert abs(image.array[misplaced].mean() - image.array[liver].mean()) > 10


def test_set_04_dicom_seg_frames_land_on_the_ct_in_order(shared_data):
    folder = shared_data / "04_dcmqi_ct3slice_dicomseg"
    ct = read_volume(folder / "ct-3slice")
    assert np.allclose(ct.spacing_mm, [0.810547, 0.810547, 1.0])  # positions 1 mm apart, not SliceThickness 1.25
    seg = read_labels(folder / "liver.dcm", ct)
    reference, _ = nrrd.read(str(folder / "liver_seg.nrrd"))
    nrrd_labels = read_labels(folder / "liver_seg.nrrd", ct)
    seg_counts = [int(np.count_nonzero(seg.array[:, :, k] == 1)) for k in range(3)]
    nrrd_counts = [int(np.count_nonzero(nrrd_labels.array[:, :, k] == 1)) for k in range(3)]
    assert seg_counts == nrrd_counts == [int(np.count_nonzero(reference[:, :, k] == 1)) for k in range(3)]
    assert len(set(seg_counts)) == 3  # distinct per frame, so a wrong frame order would show
    assert np.array_equal(seg.array == 1, nrrd_labels.array == 1)
    assert segment_label_map(folder / "liver.dcm") == {"liver": 1}  # named by its SNOMED code (SRT T-62000, Liver)
    # the two-label NRRD: liver 1 and spine 2 on the same grid
    both = read_labels(folder / "liver_spine_seg.nrrd", ct)
    anatomy = anatomy_from_labels(both, mapping={"liver": 1, "bone": 2})
    assert anatomy.volume_ml("liver") == pytest.approx(sum(seg_counts) * ct.voxel_volume_ml)
    # a SEG given as labels without a preset maps its segment label "Liver" to the liver
    document = inspect_image(folder / "ct-3slice", labels=folder / "liver.dcm")
    assert document["liver_volume_ml"] == pytest.approx(sum(seg_counts) * ct.voxel_volume_ml, abs=1e-3)


TRUE_SPACING_01 = (0.664 * 512 / 64, 0.664 * 512 / 64, 5.0)  # header spacing predates in-plane downsampling


def test_set_01_tumour_components_are_found(shared_data):
    """Assumes the true spacing 5.31 × 5.31 × 5 mm (0.664 × 512 / 64 in plane), not the header's."""
    folder = shared_data / "01_lits_resized_liver_tumour"
    labels = read_labels(folder / "resized_mask.nii")
    affine = labels.affine.copy()
    affine[:3, :3] = labels.direction * np.asarray(TRUE_SPACING_01)
    corrected = Volume(labels.array, affine, "SEG")
    anatomy = anatomy_from_labels(corrected, preset="liver_tumour")
    components = lesion_components(anatomy)
    assert len(components) == 13
    assert sum(int(c.sum()) for c in components) == 210
    lesions = measure_lesions(anatomy)
    assert [lesion.id for lesion in lesions] == [f"L{n}" for n in range(1, 14)]
    assert [lesion.voxel_count for lesion in lesions] == sorted((int(c.sum()) for c in components), reverse=True)
    assert lesions[0].voxel_count == 146
    assert sum(lesion.volume_ml for lesion in lesions) == pytest.approx(210 * corrected.voxel_volume_ml)
    assert anatomy.volume_ml("liver") == pytest.approx(6165 * corrected.voxel_volume_ml)
    assert [m.voxel_count for m in measure_lesions(anatomy, min_voxels=5)] == [146, 36, 12]
    # the inspect route, with the header's spacing, finds the same components
    document = inspect_image(
        folder / "resized_liver.nii", labels=folder / "resized_mask.nii", label_preset="liver_tumour"
    )
    assert len(document["lesions"]) == 13


@pytest.mark.parametrize(
    "axes, flips", [((0, 1, 2), (1, 1, 1)), ((2, 0, 1), (-1, 1, 1)), ((1, 2, 0), (1, -1, -1)), ((0, 2, 1), (-1, -1, 1))]
)
def test_set_02_any_axis_order_gives_the_same_structures_in_patient_space(shared_data, tmp_path, axes, flips):
    """Set 02's label map rewritten in another voxel axis order and direction (nibabel's orientation
    transforms): the same liver centroid and volume, and it lands back on the original grid exactly."""
    from nibabel.orientations import apply_orientation, inv_ornt_aff

    path = shared_data / "02_totalseg_ct_sm_vessels" / "example_seg.nii.gz"
    original = nib.load(path)
    ornt = np.array([[axis, flip] for axis, flip in zip(axes, flips)], dtype=float)
    data = apply_orientation(np.asanyarray(original.dataobj), ornt)
    affine = original.affine @ inv_ornt_aff(ornt, original.shape)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "reoriented.nii.gz")
    before, after = read_labels(path), read_labels(tmp_path / "reoriented.nii.gz")
    liver_before, liver_after = before.array == 5, after.array == 5
    assert np.count_nonzero(liver_before) == np.count_nonzero(liver_after) == 38634
    centroid_before = before.index_to_lps(np.argwhere(liver_before).mean(axis=0))
    centroid_after = after.index_to_lps(np.argwhere(liver_after).mean(axis=0))
    assert np.allclose(centroid_before, centroid_after, atol=1e-6)
    assert np.array_equal(read_labels(tmp_path / "reoriented.nii.gz", before).array, before.array)
