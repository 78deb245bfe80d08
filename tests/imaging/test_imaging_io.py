"""Readers and writers on generated files: NIfTI in any orientation, NRRD spaces, DICOM series (sorting,
two series, corrupt files, gantry tilt, uneven spacing), label grids, DICOM-SEG round trip."""

from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation
from support.synthetic import centres_mm, ct_like, oblique_grid, sphere

from cryoplan.errors import InputError
from cryoplan.imaging import (
    ImagingWarning,
    Volume,
    read_labels,
    read_volume,
    segment_label_map,
    write_dicom_seg,
    write_dicom_series,
    write_nifti,
)
from cryoplan.imaging.io import RAS_TO_LPS, orientation_code


def _small_series_volume(seed: int = 0, shape=(24, 20, 9), spacing=(0.8, 0.9, 2.5)) -> Volume:
    """An axial-ish CT volume (small rotation) whose values are a linear function of position."""
    affine = np.eye(4)
    angle = np.radians(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine[:3, :3] = rotation * np.asarray(spacing)
    affine[:3, 3] = (-10.0, 20.0, -300.0)
    grid = Volume(np.zeros(shape), affine, "CT")
    points = centres_mm(grid)
    values = 2.0 * points[..., 0] - 3.0 * points[..., 1] + 1.5 * points[..., 2]
    return grid.with_array(np.round(values).astype(np.int16))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nifti_round_trip_keeps_values_and_lps_affine(tmp_path, seed):
    grid = oblique_grid(seed, extent_mm=30)
    volume = grid.with_array(np.random.default_rng(seed).integers(-1000, 1000, grid.shape).astype(np.int16))
    write_nifti(volume, tmp_path / "image.nii.gz")
    back = read_volume(tmp_path / "image.nii.gz")
    assert np.array_equal(back.array, volume.array)
    assert np.allclose(back.affine, volume.affine, atol=1e-4)
    # the file is RAS: nibabel sees x and y flipped relative to the Volume's LPS affine
    assert np.allclose(nib.load(tmp_path / "image.nii.gz").affine, RAS_TO_LPS @ volume.affine, atol=1e-4)


def test_nifti_orientation_code_follows_the_file(tmp_path):
    data = np.zeros((4, 5, 6), np.int16)
    for ras_affine, expected in [
        (np.diag([2, 2, 3, 1.0]), "RAS"),
        (np.diag([-2, -2, 3, 1.0]), "LPS"),
        (np.diag([-2, 2, 3, 1.0]), "LAS"),
    ]:
        nib.save(nib.Nifti1Image(data, ras_affine), tmp_path / "x.nii")
        volume = read_volume(tmp_path / "x.nii")
        assert orientation_code(volume.affine) == expected == "".join(nib.aff2axcodes(ras_affine))


def test_qform_sform_conflict_is_reported(tmp_path):
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    image.set_qform(np.eye(4), code=1)
    image.set_sform(shifted, code=1)
    nib.save(image, tmp_path / "conflict.nii")
    with pytest.warns(ImagingWarning, match="qform and sform disagree"):
        volume = read_volume(tmp_path / "conflict.nii")
    assert volume.affine[0, 3] == pytest.approx(-5.0)  # the sform, in LPS


@pytest.mark.parametrize("space, flip", [("left-posterior-superior", (1, 1)), ("right-anterior-superior", (-1, -1))])
def test_nrrd_space_is_converted_to_lps(tmp_path, space, flip):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    directions = np.array([[1.5, 0, 0], [0, 0.5, 0.1], [0, 0, 2.0]])
    header = {"space": space, "space directions": directions, "space origin": np.array([10.0, -20.0, 30.0])}
    nrrd.write(str(tmp_path / "x.nrrd"), data, header)
    volume = read_volume(tmp_path / "x.nrrd")
    assert np.array_equal(volume.array, data)
    sign = np.array([flip[0], flip[1], 1.0])
    assert np.allclose(volume.affine[:3, :3], (directions.T) * sign[:, None])
    assert np.allclose(volume.affine[:3, 3], np.array([10.0, -20.0, 30.0]) * sign)


def _shuffle_instance_numbers(folder, seed=0):
    files = sorted(folder.iterdir())
    numbers = np.random.default_rng(seed).permutation(len(files)) + 1
    for file, number in zip(files, numbers):
        ds = pydicom.dcmread(file)
        ds.InstanceNumber = int(number)
        ds.save_as(file)


def test_dicom_series_is_sorted_by_position_not_instance_number(tmp_path):
    volume = _small_series_volume()
    write_dicom_series(volume, tmp_path / "series")
    _shuffle_instance_numbers(tmp_path / "series")
    back = read_volume(tmp_path / "series")
    assert back.modality == "CT"
    assert np.array_equal(back.array, volume.array)
    assert np.allclose(back.affine, volume.affine, atol=1e-4)


def test_dicom_series_reversed_slice_order_gives_same_geometry(tmp_path):
    """A stack written from superior to inferior reads with its own axes; positions are the same."""
    volume = _small_series_volume()
    flipped_affine = volume.affine.copy()
    flipped_affine[:3, 2] *= -1
    flipped_affine[:3, 3] = volume.index_to_lps([0, 0, volume.shape[2] - 1])
    flipped = Volume(volume.array[:, :, ::-1].copy(), flipped_affine, "CT")
    write_dicom_series(flipped, tmp_path / "series")
    back = read_volume(tmp_path / "series")
    centre = volume.index_to_lps(np.array(volume.shape) / 2)
    for v in (volume, back):
        index = np.round(v.lps_to_index(centre)).astype(int)
        assert v.array[tuple(index)] == volume.array[tuple(np.round(volume.lps_to_index(centre)).astype(int))]


def test_folder_with_two_series_reads_the_largest_axial_one_and_series_uid_chooses(tmp_path):
    first = _small_series_volume(0)
    uid_a = write_dicom_series(first, tmp_path / "mixed", seed=1)
    small = _small_series_volume(0, shape=(10, 12, 5))
    uid_b = write_dicom_series(small, tmp_path / "mixed", seed=2)
    with pytest.warns(ImagingWarning, match="largest axial") as caught:
        chosen = read_volume(tmp_path / "mixed")
    assert chosen.shape == first.shape and np.array_equal(chosen.array, first.array)
    assert uid_a in str(caught[0].message) and uid_b in str(caught[0].message)
    assert read_volume(tmp_path / "mixed", series_uid=uid_b).shape == small.shape
    # a larger sagittal series loses to the axial one
    sagittal = Volume(
        np.zeros((9, 30, 40), np.int16), np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])
    )
    write_dicom_series(sagittal, tmp_path / "mixed", seed=3)
    with pytest.warns(ImagingWarning, match="largest axial"):
        assert read_volume(tmp_path / "mixed").shape == first.shape
    with pytest.raises(InputError, match="series"):
        read_volume(tmp_path / "mixed", series_uid="1.2.3")


def test_corrupt_files_are_named(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(_small_series_volume(), folder)
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-500])  # truncated pixel data
    with pytest.raises(InputError, match=victim.name):
        read_volume(folder)
    victim.write_bytes(b"not a dicom file at all")
    with pytest.raises(InputError, match=victim.name):
        read_volume(folder)


def test_gantry_tilt_is_detected_and_resampled(tmp_path):
    volume = _small_series_volume(shape=(30, 30, 10))
    sheared = volume.affine.copy()
    tilt = np.radians(15.0)
    sheared[:3, 2] = volume.affine[:3, 2] + np.tan(tilt) * 2.5 * volume.direction[:, 1]  # slices drift along j
    grid = Volume(np.zeros(volume.shape), sheared, "CT")
    points = centres_mm(grid)
    values = 2.0 * points[..., 0] - 3.0 * points[..., 1] + 1.5 * points[..., 2]
    write_dicom_series(grid.with_array(np.round(values).astype(np.int16)), tmp_path / "tilted")
    with pytest.warns(ImagingWarning, match=r"gantry tilt of 15\.0"):
        back = read_volume(tmp_path / "tilted")
    gram = back.direction.T @ back.direction
    assert np.allclose(gram, np.eye(3), atol=1e-6)  # orthogonal after resampling
    expected = 2.0 * centres_mm(back)[..., 0] - 3.0 * centres_mm(back)[..., 1] + 1.5 * centres_mm(back)[..., 2]
    inside = np.zeros(back.shape, bool)
    inside[8:-8, 8:-8, :] = True  # away from the edges the shifted slices leave empty
    assert np.max(np.abs(back.array[inside] - expected[inside])) <= 1.5  # linear data, rounding only


def test_uneven_spacing_is_resampled_and_missing_slices_refused(tmp_path):
    volume = _small_series_volume(shape=(16, 16, 8), spacing=(1.0, 1.0, 2.0))
    folder = tmp_path / "uneven"
    write_dicom_series(volume, folder)
    files = sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    ds = pydicom.dcmread(files[4])
    position = np.asarray(ds.ImagePositionPatient, float)
    ds.ImagePositionPatient = list(position + [0, 0, 0.4])  # 2.4 then 1.6 mm
    ds.save_as(files[4])
    with pytest.warns(ImagingWarning, match="uneven slice spacing"):
        back = read_volume(folder)
    assert back.spacing_mm[2] == pytest.approx(2.0)
    assert back.shape[2] == 8
    # slices 0–3 and 5–7 are unchanged; slice 4 interpolated between its neighbours at the right place
    assert np.array_equal(back.array[:, :, :4], volume.array[:, :, :4])
    assert np.abs(back.array[:, :, 4].astype(float) - volume.array[:, :, 4]).max() <= 1.5
    files[4].unlink()  # a 4 mm gap: missing slice
    with pytest.raises(InputError, match="gap"):
        read_volume(folder)


def test_label_map_on_another_grid_is_an_error_or_resampled_with_warning(tmp_path):
    image = _small_series_volume(shape=(20, 20, 10), spacing=(1.0, 1.0, 2.0))
    coarse_affine = image.affine.copy()
    coarse_affine[:3, :2] *= 2.0
    coarse_affine[:3, 3] += 0.5 * (image.affine[:3, 0] + image.affine[:3, 1])  # no half-way ties
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[3:7, 3:7, 2:8] = 2
    write_nifti(Volume(labels, coarse_affine), tmp_path / "coarse.nii.gz")
    with pytest.raises(InputError, match="on the image grid"):
        read_labels(tmp_path / "coarse.nii.gz", image)
    with pytest.warns(ImagingWarning, match="nearest neighbour"):
        resampled = read_labels(tmp_path / "coarse.nii.gz", image, resample=True)
    assert resampled.same_grid(image)
    assert np.count_nonzero(resampled.array == 2) == 4 * np.count_nonzero(labels)  # coarse voxel → 2×2 fine


def test_labels_reordered_exactly_when_only_axis_order_differs(tmp_path):
    image = _small_series_volume()
    labels = np.zeros(image.shape, np.uint8)
    labels[5:9, 2:12, 3:6] = 1
    labels[15:18, 10:14, 1:2] = 7
    flipped_affine = image.affine @ np.array(
        [[0, 1, 0, 0], [-1, 0, 0, image.shape[1] - 1], [0, 0, -1, image.shape[2] - 1], [0, 0, 0, 1.0]]
    )
    # flipped[a, b, c] = labels[b, J-1-a, K-1-c]
    flipped = np.transpose(labels[:, ::-1, ::-1], (1, 0, 2))
    write_nifti(Volume(np.ascontiguousarray(flipped), flipped_affine), tmp_path / "labels.nii.gz")
    back = read_labels(tmp_path / "labels.nii.gz", image)
    assert np.array_equal(back.array, labels)


def test_non_integer_labels_are_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 1.5, np.float32), np.eye(4)), tmp_path / "soft.nii")
    with pytest.raises(InputError, match="whole numbers"):
        read_labels(tmp_path / "soft.nii")


def test_round_trip_nifti_volume_dicom_seg_volume_is_exact(tmp_path):
    """NIfTI labels → Volume → DICOM-SEG on the source series → Volume: every voxel equal."""
    image = _small_series_volume(shape=(32, 28, 12))
    points = centres_mm(image)
    centre = image.index_to_lps(np.array(image.shape) / 2)
    labels = np.zeros(image.shape, np.uint8)
    labels[sphere(image, centre, 16.0, points)] = 1
    labels[sphere(image, centre + [4, 2, 0], 7.0, points)] = 2
    labels[0:3, 0:2, 11] = 3  # a corner and the last slice
    write_dicom_series(image, tmp_path / "ct")
    write_nifti(image.with_array(labels), tmp_path / "labels.nii.gz")
    source = read_volume(tmp_path / "ct")
    label_volume = read_labels(tmp_path / "labels.nii.gz", source)
    names = {"liver": 1, "tumour": 2, "bone": 3}
    masks = {name: label_volume.array == value for name, value in names.items()}
    write_dicom_seg(masks, tmp_path / "ct", tmp_path / "seg.dcm", "round trip")
    assert segment_label_map(tmp_path / "seg.dcm") == names  # structure names: their codes give the same names
    back = read_labels(tmp_path / "seg.dcm", source)
    assert np.array_equal(back.array, labels)
    own_grid = read_labels(tmp_path / "seg.dcm")  # without a reference: the SEG's own frame geometry
    assert own_grid.same_grid(source) and np.array_equal(own_grid.array, labels)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    source_uids = {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "ct").iterdir()}
    referenced = {
        item.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for item in s.ReferencedInstanceSequence
    }
    assert referenced == source_uids
    assert (
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID
        == pydicom.dcmread(next((tmp_path / "ct").iterdir())).SeriesInstanceUID
    )


def test_dicom_seg_mask_of_wrong_shape_is_refused(tmp_path):
    image = _small_series_volume()
    write_dicom_series(image, tmp_path / "ct")
    with pytest.raises(InputError, match="masks.tumour"):
        write_dicom_seg({"tumour": np.zeros((3, 3, 3), bool)}, tmp_path / "ct", tmp_path / "seg.dcm", "x")
    assert not (tmp_path / "seg.dcm").exists()


def test_ct_like_values_survive_the_dicom_series_writer(tmp_path):
    grid = oblique_grid(7, extent_mm=20)
    labels = sphere(grid, grid.index_to_lps(np.array(grid.shape) / 2), 10.0).astype(np.uint8)
    image = ct_like(grid, labels)
    write_dicom_series(image, tmp_path / "ct")
    back = read_volume(tmp_path / "ct")
    assert np.array_equal(back.array, image.array)
    assert np.allclose(back.affine, image.affine, atol=1e-4)


@pytest.mark.parametrize("syntax", ["JPEGLSLossless", "JPEG2000Lossless"])
def test_compressed_series_decode_to_the_same_values(tmp_path, syntax):
    volume = _small_series_volume(shape=(64, 64, 3))  # JPEG 2000 needs ≥ 2^5 pixels for its 5 decomposition levels
    write_dicom_series(volume, tmp_path / "ct")
    for file in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(file)
        ds.compress(getattr(pydicom.uid, syntax))
        ds.save_as(file)
    assert pydicom.dcmread(next((tmp_path / "ct").iterdir())).file_meta.TransferSyntaxUID == getattr(
        pydicom.uid, syntax
    )
    back = read_volume(tmp_path / "ct")
    assert np.array_equal(back.array, volume.array)


def test_dicom_seg_on_another_grid_needs_explicit_resampling(tmp_path):
    image = _small_series_volume(shape=(20, 16, 6), spacing=(1.0, 1.0, 2.0))
    write_dicom_series(image, tmp_path / "ct")
    tumour = np.zeros(image.shape, bool)
    tumour[6:14, 4:12, 1:5] = True
    write_dicom_seg({"tumour": tumour}, tmp_path / "ct", tmp_path / "seg.dcm", "tumour")
    fine_affine = image.affine.copy()
    fine_affine[:3, 2] /= 2  # slices every 1 mm instead of 2 mm
    fine = Volume(np.zeros((20, 16, 11)), fine_affine)
    with pytest.raises(InputError, match="off the grid|on the image grid"):
        read_labels(tmp_path / "seg.dcm", fine)
    with pytest.warns(ImagingWarning, match="nearest neighbour"):
        resampled = read_labels(tmp_path / "seg.dcm", fine, resample=True)
    assert np.array_equal(resampled.array[:, :, ::2] == 1, tumour)  # every other fine slice is a SEG frame
    assert np.count_nonzero(resampled.array) == 8 * 8 * 8  # slices 2–9 of the fine grid lie within 0.5 slice


def test_nrrd_without_anatomical_space_is_refused(tmp_path):
    nrrd.write(str(tmp_path / "plain.nrrd"), np.zeros((3, 3, 3), np.int16))
    with pytest.raises(InputError, match="space"):
        read_volume(tmp_path / "plain.nrrd")


def test_imaging_does_not_import_thermal_or_clinical():
    import subprocess
    import sys

    code = (
        "import sys, cryoplan.imaging, cryoplan.imaging.anatomy, cryoplan.imaging.phantom, cryoplan.imaging.deid; "
        "print(sorted(m for m in sys.modules if m.startswith(('cryoplan.thermal', 'cryoplan.clinical'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_label_map_on_a_cropped_grid_is_placed_exactly(tmp_path):
    image = _small_series_volume()
    crop_affine = image.affine.copy()
    crop_affine[:3, 3] = image.index_to_lps([4, 3, 2])
    crop = np.zeros((10, 8, 5), np.uint8)
    crop[2:6, 1:7, 1:4] = 2
    write_nifti(Volume(crop, crop_affine), tmp_path / "crop.nii.gz")
    placed = read_labels(tmp_path / "crop.nii.gz", image)
    expected = np.zeros(image.shape, np.uint8)
    expected[4:14, 3:11, 2:7] = crop
    assert np.array_equal(placed.array, expected)
    crop_affine[:3, 3] = image.index_to_lps([20, 3, 2])  # reaches 6 voxels beyond the image in i
    write_nifti(Volume(crop, crop_affine), tmp_path / "beyond.nii.gz")
    with pytest.raises(InputError, match="outside"):
        read_labels(tmp_path / "beyond.nii.gz", image)


# ------------------------------------------------------------------------------- Volume.resampled


def _brute_force_nearest(volume: Volume, shape, affine, cval=0) -> np.ndarray:
    """Nearest voxel by rounding half up, one target voxel at a time (the definition, slowly)."""
    to_index = np.linalg.inv(volume.affine) @ affine
    output = np.full(shape, cval, dtype=volume.array.dtype)
    for ijk in np.ndindex(*shape):
        index = np.floor(to_index[:3, :3] @ ijk + to_index[:3, 3] + 0.5).astype(int)
        if np.all(index >= 0) and np.all(index < volume.shape):
            output[ijk] = volume.array[tuple(index)]
    return output


def _oblique_around(source: Volume, shape, spacing, angles_deg, source_index) -> np.ndarray:
    """Affine of a rotated, anisotropic grid whose centre lies at `source_index` of `source`."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() * np.asarray(spacing)
    affine[:3, 3] = source.index_to_lps(source_index) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def test_resampled_nearest_matches_the_definition_on_an_oblique_grid():
    rng = np.random.default_rng(3)
    source = _small_series_volume(shape=(9, 8, 7))
    labels = source.with_array(rng.integers(0, 5, source.shape).astype(np.uint8), modality="SEG")
    affine = _oblique_around(source, (10, 9, 6), (0.7, 1.1, 1.9), (7.0, -11.0, 23.0), [3.2, 2.9, 2.6])
    resampled = labels.resampled((10, 9, 6), affine)
    assert resampled.modality == "SEG" and resampled.array.dtype == np.uint8
    assert np.allclose(resampled.affine, affine)
    expected = _brute_force_nearest(labels, (10, 9, 6), affine)
    assert np.array_equal(resampled.array, expected)
    assert 0 < np.count_nonzero(expected) < expected.size  # the target reaches outside: both cases tested


def test_resampled_onto_a_permuted_flipped_grid_is_an_exact_reordering():
    source = _small_series_volume(shape=(6, 5, 4))
    # target axis i runs along source k backwards, j along source i, k along source j
    steps = np.stack([-source.affine[:3, 2], source.affine[:3, 0], source.affine[:3, 1]], axis=1)
    affine = np.eye(4)
    affine[:3, :3] = steps
    affine[:3, 3] = source.index_to_lps([0, 0, 3])
    moved = source.resampled((4, 6, 5), affine)
    assert np.array_equal(moved.array, np.transpose(source.array, (2, 0, 1))[::-1])
    assert np.array_equal(moved.resampled(source.shape, source.affine).array, source.array)


def test_resampled_linear_reproduces_a_linear_field_exactly():
    source = _small_series_volume(shape=(12, 11, 10))
    target = Volume(
        np.zeros((6, 6, 5)), _oblique_around(source, (6, 6, 5), (1.3, 0.9, 2.1), (5.0, 9.0, -14.0), [5.5, 5.0, 4.5])
    )
    index = source.lps_to_index(centres_mm(target))
    assert np.all((index > 0) & (index < np.asarray(source.shape) - 1))  # every centre strictly inside

    def ramp(points):
        return 2.0 * points[..., 0] - 3.0 * points[..., 1] + 1.5 * points[..., 2]

    exact = ramp(centres_mm(target))
    linear = source.with_array(ramp(centres_mm(source))).resampled(target.shape, target.affine, order=1)
    assert linear.array.dtype == np.float64
    assert np.allclose(linear.array, exact, atol=1e-9)


def test_resampled_bool_mask_stays_bool_and_uses_cval_outside():
    mask = Volume(np.ones((3, 3, 3), dtype=bool), np.eye(4))
    shifted = np.eye(4)
    shifted[0, 3] = 2.0  # target voxel i lies at source i + 2: i = 0 inside, i ≥ 1 outside
    moved = mask.resampled((3, 3, 3), shifted)
    assert moved.array.dtype == bool
    assert moved.array[0].all() and not moved.array[1:].any()
    labels = Volume(np.full((3, 3, 3), 4, dtype=np.int64), np.eye(4))
    assert np.array_equal(np.unique(labels.resampled((3, 3, 3), shifted, cval=-1).array), [-1, 4])
    with pytest.raises(InputError, match="order"):
        mask.resampled((3, 3, 3), np.eye(4), order=3)
