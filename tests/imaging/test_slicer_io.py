"""3D Slicer files: layered .seg.nrrd written and read back (overlapping segments, names, terminology),
NRRD volumes, probe Markups JSON; DICOM-SEG segments matched by their SNOMED codes."""

from __future__ import annotations

import json
import warnings

import nrrd
import numpy as np
import pydicom
import pytest
import slicerio
from support.synthetic import centres_mm

from cryoplan.imaging import ImagingWarning, Volume, read_labels, read_volume, segment_label_map, write_dicom_seg
from cryoplan.imaging.io import write_nrrd, write_probe_markups, write_slicer_segmentation


def _grid(shape=(30, 26, 20)) -> Volume:
    affine = np.array([[0.0, -1.5, 0, 40.0], [1.2, 0, 0, -20.0], [0, 0, 2.0, -100.0], [0, 0, 0, 1]])
    return Volume(np.zeros(shape, np.int16), affine, "CT")


def _balls(grid: Volume) -> dict[str, np.ndarray]:
    points = centres_mm(grid)
    centre = grid.index_to_lps((np.asarray(grid.shape) - 1) / 2)
    distance = np.linalg.norm(points - centre, axis=-1)
    return {
        "liver": distance <= 14.0,
        "tumour": distance <= 5.0,
        "isotherm -40 C": distance <= 8.0,
        "aorta": (points[..., 0] - centre[0] > 15.0),  # beside the liver, not in it
    }


def test_layered_segmentation_round_trips_through_slicerio(tmp_path):
    grid = _grid()
    masks = _balls(grid)
    write_slicer_segmentation(masks, grid.affine, tmp_path / "structures.seg.nrrd")
    header = nrrd.read_header(str(tmp_path / "structures.seg.nrrd"))
    assert header["dimension"] == 4  # overlapping segments need layers
    segmentation = slicerio.read_segmentation(str(tmp_path / "structures.seg.nrrd"))
    assert np.allclose(segmentation["ijkToLPS"], grid.affine)
    for name, mask in masks.items():
        segment = slicerio.segment_from_name(segmentation, name)
        assert np.array_equal(slicerio.segment_mask(segmentation, segment), mask)
    liver = slicerio.segment_from_name(segmentation, "liver")
    assert liver["terminology"]["type"][:2] == ["SCT", "10200004"]


def test_layered_segmentation_reads_as_labels_with_the_smallest_segment_on_top(tmp_path):
    grid = _grid()
    masks = _balls(grid)
    write_slicer_segmentation(masks, grid.affine, tmp_path / "s.seg.nrrd")
    names = segment_label_map(tmp_path / "s.seg.nrrd")
    assert set(names) == set(masks)
    with pytest.warns(ImagingWarning, match="several segments"):
        labels = read_labels(tmp_path / "s.seg.nrrd", grid)
    assert labels.same_grid(grid)
    assert np.array_equal(labels.array == names["tumour"], masks["tumour"])
    assert np.array_equal(labels.array == names["isotherm -40 C"], masks["isotherm -40 C"] & ~masks["tumour"])
    assert np.array_equal(labels.array == names["liver"], masks["liver"] & ~masks["isotherm -40 C"])


def test_slicer_segment_named_by_its_code_whatever_its_name(tmp_path):
    grid = _grid()
    write_slicer_segmentation({"liver": _balls(grid)["liver"]}, grid.affine, tmp_path / "s.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(tmp_path / "s.seg.nrrd"))
    segmentation["segments"][0]["name"] = "Leber"  # the code stays SNOMED CT 10200004
    slicerio.write_segmentation(str(tmp_path / "renamed.seg.nrrd"), segmentation)
    assert segment_label_map(tmp_path / "renamed.seg.nrrd") == {"liver": 1}


def test_dicom_seg_segments_named_by_their_codes(tmp_path, shared_data):
    # set 04's SEG codes its segment in SNOMED RT (T-62000), labelled "Liver"
    assert segment_label_map(shared_data / "04_dcmqi_ct3slice_dicomseg" / "liver.dcm") == {"liver": 1}
    source = shared_data / "04_dcmqi_ct3slice_dicomseg" / "ct-3slice"
    ct = read_volume(source)
    mask = np.zeros(ct.shape, bool)
    mask[200:260, 220:300, :] = True
    write_dicom_seg({"tumour": mask, "liver": ~mask}, source, tmp_path / "seg.dcm", "coded")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    seg.SegmentSequence[0].SegmentLabel = "Herd 1"
    seg.SegmentSequence[1].SegmentLabel = "Segment_2"
    seg.save_as(tmp_path / "relabelled.dcm")
    assert segment_label_map(tmp_path / "relabelled.dcm") == {"tumour": 1, "liver": 2}


def test_nrrd_volume_round_trips_in_lps(tmp_path):
    grid = _grid()
    temperature = grid.with_array(np.random.default_rng(1).uniform(-150, 37, grid.shape).astype(np.float32))
    write_nrrd(temperature, tmp_path / "t.nrrd")
    header = nrrd.read_header(str(tmp_path / "t.nrrd"))
    assert header["space"] == "left-posterior-superior"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_volume(tmp_path / "t.nrrd")
    assert np.allclose(back.affine, grid.affine) and np.array_equal(back.array, temperature.array)


def test_probe_markups_one_line_per_probe_entry_to_tip_in_lps(tmp_path):
    probes = [
        {"name": "L1 probe 1", "entry_lps_mm": [10.0, -80.0, 5.0], "tip_lps_mm": [12.0, -20.0, 4.0]},
        {"name": "L1 probe 2", "entry_lps_mm": [25.0, -80.0, 5.0], "tip_lps_mm": [27.0, -20.0, 4.0]},
    ]
    write_probe_markups(probes, tmp_path / "probes.mrk.json")
    document = json.loads((tmp_path / "probes.mrk.json").read_text())
    assert document["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert [m["type"] for m in document["markups"]] == ["Line", "Line"]
    for markup, probe in zip(document["markups"], probes):
        assert markup["coordinateSystem"] == "LPS" and markup["name"] == probe["name"]
        entry, tip = markup["controlPoints"]
        assert entry["position"] == probe["entry_lps_mm"] and tip["position"] == probe["tip_lps_mm"]
