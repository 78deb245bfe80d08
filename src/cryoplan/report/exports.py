"""A plan in the formats other software opens, each export written on its own.

On a plan made on a DICOM series: the isotherms as a DICOM Segmentation, the tumour and its margin as a
second one, and the minimum temperature as a DICOM Parametric Map, all referencing the series. Always: a 3D
Slicer set (probe trajectories as Markups JSON, the structures and the isotherms as ``.seg.nrrd``, the
minimum temperature as NRRD). An export that fails is reported (an `ExportWarning` and an entry naming the
export and the reason) and the plan, its NIfTI maps and the other exports are kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryoplan.errors import InputError
from cryoplan.imaging.io import (
    write_dicom_seg,
    write_nrrd,
    write_probe_markups,
    write_slicer_segmentation,
    write_temperature_map,
)
from cryoplan.imaging.volume import Volume
from cryoplan.planning.coverage import margin_shell
from cryoplan.planning.pipeline import CasePlan

#: Body temperature, the simulation's value far from the probes (°C).
BODY_TEMPERATURE_C = 37.0


class ExportWarning(UserWarning):
    """An export of the plan failed; the plan and the other outputs were written."""


def isotherm_name(temperature_c: float) -> str:
    """Segment name of an isotherm ("isotherm -40 C"), the form the SEG and Slicer writers code."""
    return f"isotherm {temperature_c:g} C"


def _tumour_and_margin(plan: CasePlan) -> dict[str, np.ndarray]:
    """The planned lesions and their margin (tumour plus `margin_mm`, inside the liver) on the image grid."""
    anatomy = plan.anatomy
    tumour = np.zeros(anatomy.grid.shape, dtype=bool)
    for unit in plan.units:
        for lesion_id in unit.lesion_ids:
            tumour |= anatomy.lesions[lesion_id]
    margin = margin_shell(tumour, plan.settings.margin_mm, anatomy.grid.spacing_mm, anatomy.liver)
    return {"tumour": tumour, "margin": margin}


def _probes(plan: CasePlan) -> list[dict[str, Any]]:
    return [
        {"name": f"{unit.unit_id} probe {n}", "entry_lps_mm": probe.entry_lps_mm, "tip_lps_mm": probe.tip_lps_mm}
        for unit in plan.units
        for n, probe in enumerate(unit.candidate.probes, start=1)
    ]


def write_exports(
    plan: CasePlan, temperature: Volume, folder: Path, isotherms_c: Sequence[float]
) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
    """Write every export of `plan` into `folder`.

    Parameters
    ----------
    plan : CasePlan
        The plan (`cryoplan.planning.pipeline.plan_case`).
    temperature : Volume
        The minimum temperature on the simulation grid (°C, body temperature where nothing was simulated).
    folder : Path
        Output folder (the caller's temporary folder: each file is itself written atomically).
    isotherms_c : sequence of float
        Isotherms to export.

    Returns
    -------
    exports : dict
        ``{"dicom": [...], "slicer": [...]}``: the files written, relative to `folder`.
    failed : list of dict
        ``{"export": name, "reason": text}`` of each export that failed.
    """
    exports: dict[str, list[str]] = {"dicom": [], "slicer": []}
    failed: list[dict[str, str]] = []

    def attempt(kind: str, name: str, file: str, write: Callable[[Path], None]) -> None:
        try:
            write(folder / file)
        except Exception as error:  # one export's failure must not lose the plan or the other exports
            reason = str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}"
            failed.append({"export": name, "reason": reason})
            warnings.warn(f"{name} export failed: {reason}", ExportWarning, stacklevel=3)
            return
        exports[kind].append(file)

    structures = _tumour_and_margin(plan)
    isotherm_masks = {isotherm_name(t): np.asarray(temperature.array) <= t for t in isotherms_c}
    source_dicom = plan.source_dicom  # a local, so that the lambdas below see it narrowed
    if source_dicom is not None:
        ct = plan.ct
        on_ct = temperature.resampled(ct.shape, ct.affine, order=1, cval=BODY_TEMPERATURE_C).array
        attempt(
            "dicom",
            "isotherm DICOM-SEG",
            "isotherms_seg.dcm",
            lambda path: write_dicom_seg(
                {isotherm_name(t): on_ct <= t for t in isotherms_c}, source_dicom, path, "cryoplan isotherms"
            ),
        )
        attempt(
            "dicom",
            "tumour and margin DICOM-SEG",
            "tumour_margin_seg.dcm",
            lambda path: write_dicom_seg(
                structures, source_dicom, path, "cryoplan tumour and margin", series_number=902
            ),
        )
        attempt(
            "dicom",
            "temperature Parametric Map",
            "min_temperature_pm.dcm",
            lambda path: write_temperature_map(on_ct, source_dicom, path),
        )
    anatomy_masks = {"liver": plan.anatomy.liver, **structures, "vessels": plan.anatomy.vessels}
    attempt("slicer", "probe Markups", "probes.mrk.json", lambda path: write_probe_markups(_probes(plan), path))
    attempt(
        "slicer",
        "structures segmentation",
        "structures.seg.nrrd",
        lambda path: write_slicer_segmentation(
            {name: mask for name, mask in anatomy_masks.items() if mask.any()}, plan.anatomy.grid.affine, path
        ),
    )
    attempt(
        "slicer",
        "isotherms segmentation",
        "isotherms.seg.nrrd",
        lambda path: write_slicer_segmentation(isotherm_masks, temperature.affine, path),
    )
    attempt("slicer", "temperature NRRD", "min_temperature.nrrd", lambda path: write_nrrd(temperature, path))
    return exports, failed
