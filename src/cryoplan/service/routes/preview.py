"""Preview of an edited probe layout: the case page sends probe tips and entries, the engine's preview mode
(`cryoplan.thermal.simulate(preview=True)`) freezes them on a coarse 2 mm grid in liver, and the page
overlays the 0/−20/−40 °C isotherms and reads the tumour's coverage, within seconds.

The preview is homogeneous liver without vessels: a quick look while moving probes, not a plan. "Run full
plan" (`edited_plan`) turns the edited layout into a full plan: a job that simulates these probes where they
are, on the patient's anatomy with its vessels (`cryoplan.planning.fixed_layout`).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import nibabel as nib
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from scipy.spatial import cKDTree
from sqlalchemy.orm import Session

from cryoplan.errors import InputError
from cryoplan.imaging.body import STRUCTURE_CLEARANCE_MM
from cryoplan.output import atomic_path
from cryoplan.service import reports, store
from cryoplan.service.audit import audit
from cryoplan.service.deps import Editor, Id, Reader, transaction
from cryoplan.service.jobs import submit_job
from cryoplan.service.models import Case
from cryoplan.service.routes.api import job_json
from cryoplan.service.routes.viewer_config import structures
from cryoplan.thermal import DEFAULT_PROTOCOL, PROBES, TISSUES, ProbePlacement, Protocol, parse_protocol, simulate
from cryoplan.thermal.chart import chart_grid

router = APIRouter(prefix="/api")
PREVIEW_GRID_MM = 2.0
ISOTHERMS_C = (0.0, -20.0, -40.0)
# NIfTI stores RAS; the engine's grid is LPS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# A case's segmentation: labels, RAS affine, named structures.
Segmentation = tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]

Point = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False, ge=-2000, le=2000)]], Field(min_length=3, max_length=3)
]


class PreviewProbe(BaseModel):
    type: str = Field(max_length=40)
    tip_lps_mm: Point
    entry_lps_mm: Point


class PreviewRequest(BaseModel):
    probes: list[PreviewProbe] = Field(min_length=1, max_length=8)
    protocol: str | None = Field(default=None, max_length=200, description="e.g. freeze:10,passive_thaw:5,freeze:10")


def _placements(probes: list[PreviewProbe]) -> list[ProbePlacement]:
    out = []
    for index, probe in enumerate(probes):
        if probe.type not in PROBES:
            raise InputError(f"probes[{index}].type", f"one of {sorted(PROBES)}", probe.type)
        direction = np.subtract(probe.tip_lps_mm, probe.entry_lps_mm)
        if np.linalg.norm(direction) < 1.0:
            raise InputError(f"probes[{index}].entry_lps_mm", "an entry at least 1 mm from the tip")
        out.append(ProbePlacement(probe.type, np.asarray(probe.tip_lps_mm), direction))
    return out


def _segmentation(db: Session, case: Case, data_dir: Path) -> Segmentation | None:
    """The case's newest segmentation (labels, RAS affine) and its named structures, if it has both."""
    named = structures(case.case_document)
    labels = [d for d in store.documents(db, case.id) if d.purpose == "labels" and d.file_type in store.IMAGE_TYPES]
    if not named or not labels:
        return None
    image = nib.load(data_dir / "documents" / labels[-1].stored_name)
    # nibabel annotates `load` as any file-based image; a NIfTI segmentation loads as a spatial image.
    return np.asarray(image.dataobj), image.affine, named  # type: ignore[attr-defined]


def _tumour_points_lps(segmentation: Segmentation) -> np.ndarray | None:
    """Centres (LPS mm) of the tumour voxels of the segmentation, if it names a tumour."""
    labels, affine, named = segmentation
    values = next((s["values"] for s in named if s["name"] == "tumour"), None)
    voxels = np.argwhere(np.isin(labels, values)) if values else np.empty((0, 3))
    if not len(voxels):
        return None
    points_ras: np.ndarray = nib.affines.apply_affine(affine, voxels)  # type: ignore[no-untyped-call]  # nibabel is untyped
    points_lps: np.ndarray = points_ras * np.array([-1.0, -1.0, 1.0])
    return points_lps


def crossed_structures(
    segmentation: Segmentation, entry_lps: Sequence[float], tip_lps: Sequence[float], step_mm: float = 0.5
) -> list[str]:
    """The segmented structures (other than liver and tumour) that the straight path from entry to tip
    passes through, in the order met: the path re-checked on the case's own segmentation."""
    labels, affine, named = segmentation
    by_value = {v: s["label"] for s in named if s["name"] not in ("liver", "tumour") for v in s["values"]}
    entry, tip = np.asarray(entry_lps, float), np.asarray(tip_lps, float)
    steps = max(2, int(np.linalg.norm(tip - entry) / step_mm) + 1)
    points_ras = (entry + np.linspace(0.0, 1.0, steps)[:, None] * (tip - entry)) * np.array([-1.0, -1.0, 1.0])
    voxels = np.rint(nib.affines.apply_affine(np.linalg.inv(affine), points_ras)).astype(int)  # type: ignore[no-untyped-call]  # nibabel is untyped
    inside = np.all((voxels >= 0) & (voxels < labels.shape[:3]), axis=1)
    met: list[str] = []
    for value in labels[tuple(voxels[inside].T)]:
        name = by_value.get(int(value))
        if name and name not in met:
            met.append(name)
    return met


def too_close(
    segmentation: Segmentation, entry_lps: Sequence[float], tip_lps: Sequence[float], radius_mm: float
) -> list[dict[str, Any]]:
    """The segmented structures that the straight path from entry to tip comes nearer than the probe's radius
    plus the structure's clearance (`cryoplan.imaging.body.STRUCTURE_CLEARANCE_MM`, the clearances the
    planner keeps): each with the smallest distance from the path's axis to its voxel centres, nearest first."""
    labels, affine, named = segmentation
    entry, tip = np.asarray(entry_lps, float), np.asarray(tip_lps, float)
    steps = max(2, int(np.linalg.norm(tip - entry) / 0.5) + 1)
    path_ras = (entry + np.linspace(0.0, 1.0, steps)[:, None] * (tip - entry)) * np.array([-1.0, -1.0, 1.0])
    tree = cKDTree(path_ras)
    found = []
    for structure in named:
        clearance = STRUCTURE_CLEARANCE_MM.get(structure["name"])
        if clearance is None:
            continue
        reach = clearance + radius_mm
        # Only the structure's voxels in a box around the path can be that near it.
        corners_ras = np.array([path_ras.min(axis=0) - reach - 5.0, path_ras.max(axis=0) + reach + 5.0])
        corners = nib.affines.apply_affine(np.linalg.inv(affine), corners_ras)  # type: ignore[no-untyped-call]  # nibabel is untyped
        low = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, None)
        high = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, labels.shape[:3])
        box = labels[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        voxels = np.argwhere(np.isin(box, structure["values"])) + low
        if not len(voxels):
            continue
        points: np.ndarray = nib.affines.apply_affine(affine, voxels)  # type: ignore[no-untyped-call]  # nibabel is untyped
        distance = float(tree.query(points)[0].min())
        if distance < reach:
            found.append(
                {"structure": structure["label"], "distance_mm": round(distance, 1), "clearance_mm": clearance}
            )
    return sorted(found, key=lambda item: item["distance_mm"])


@router.post("/cases/{case_id}/preview", summary="Freeze an edited probe layout on a coarse grid (seconds)")
def preview(request: Request, case_id: Id, body: PreviewRequest, actor: Editor) -> dict[str, Any]:
    started = time.perf_counter()
    data_dir = request.app.state.settings.data_dir
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id, action="preview")
        plan_job = store.latest_plan_job(db, case_id)
        plan = reports.plan_summary(None if plan_job is None else request.app.state.runner.output_dir(plan_job.id))
        segmentation = _segmentation(db, case, data_dir)
    lethal_c = float(((plan or {}).get("settings") or {}).get("lethal_isotherm_c", -20.0))
    protocol = parse_protocol(body.protocol) if body.protocol else _plan_protocol(plan)
    placements = _placements(body.probes)
    liver = TISSUES["liver"]
    grid = chart_grid(placements, liver, protocol, PREVIEW_GRID_MM)
    result = simulate(grid, placements, protocol, tissues=liver, isotherms_c=ISOTHERMS_C, preview=True)
    zones = np.zeros(grid.shape, dtype=np.uint8)
    for level, celsius in enumerate(ISOTHERMS_C, start=1):
        zones[result.isotherm_mask(celsius)] = level
    folder = data_dir / "previews"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"case-{case_id}.nii.gz") as tmp:
        image = nib.Nifti1Image(zones, LPS_TO_RAS @ grid.affine)  # type: ignore[no-untyped-call]  # nibabel is untyped
        tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1))
    tumour = None if segmentation is None else _tumour_points_lps(segmentation)
    covered = None
    if tumour is not None:
        covered = float((result.temperature_along_c(tumour, "min") <= lethal_c).mean() * 100)
    with transaction(request) as db:
        audit(db, actor, "preview", "case", case_id, case_id, detail=f"{len(placements)} probes")
    return {
        "schema_version": 1,
        "grid_mm": PREVIEW_GRID_MM,
        "protocol": [{"phase": p.kind, "minutes": p.minutes} for p in protocol.phases],
        "lethal_isotherm_c": lethal_c,
        "isotherm_volumes_ml": {f"{c:g}": round(result.isotherm_volume_ml(c), 1) for c in ISOTHERMS_C},
        "tumour_covered_pct": None if covered is None else round(covered, 1),
        "paths": [
            {
                "probe": f"P{n}",
                "length_mm": round(float(np.linalg.norm(np.subtract(p.tip_lps_mm, p.entry_lps_mm))), 1),
                "crossed": None
                if segmentation is None
                else crossed_structures(segmentation, p.entry_lps_mm, p.tip_lps_mm),
                "too_close": None
                if segmentation is None
                else too_close(segmentation, p.entry_lps_mm, p.tip_lps_mm, PROBES[p.type].radius_mm),
            }
            for n, p in enumerate(body.probes, start=1)
        ],
        "simulation_s": round(result.elapsed_s, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "isotherms_url": f"/api/cases/{case_id}/preview.nii.gz?t={time.time_ns()}",
    }


@router.post(
    "/cases/{case_id}/edited-plan",
    status_code=202,
    summary="Start the full plan of an edited probe layout (a job: the probes stay where they are)",
)
def edited_plan(request: Request, case_id: Id, body: PreviewRequest, actor: Editor) -> dict[str, Any]:
    """The layout is checked as for a preview; the freeze lasts as long as the first freeze of the given
    protocol (or of the case's plan), in the planner's protocol (double freeze with a passive thaw)."""
    _placements(body.probes)
    if body.protocol:
        protocol = parse_protocol(body.protocol)
    else:
        with transaction(request) as db:
            store.get_case(db, actor, case_id, action="read_plan")
            plan_job = store.latest_plan_job(db, case_id)
        runner = request.app.state.runner
        protocol = _plan_protocol(reports.plan_summary(None if plan_job is None else runner.output_dir(plan_job.id)))
    freezes = [p.minutes for p in protocol.phases if p.kind == "freeze"]
    if not freezes:
        raise InputError("protocol", "a protocol with a freeze phase", body.protocol)
    layout = {"probes": [p.model_dump() for p in body.probes], "freeze_minutes": freezes[0]}
    return job_json(request, submit_job(request, actor, case_id, "edited_plan", layout))


def _plan_protocol(plan: dict[str, Any] | None) -> Protocol:
    """The protocol of the plan's first lesion, or the default protocol."""
    for lesion in (plan or {}).get("lesions") or []:
        if lesion.get("protocol"):
            return parse_protocol(",".join(f"{p['phase']}:{p['minutes']:g}" for p in lesion["protocol"]))
    return DEFAULT_PROTOCOL


@router.get("/cases/{case_id}/preview.nii.gz", response_class=FileResponse, summary="The newest preview's isotherms")
def preview_file(request: Request, case_id: Id, actor: Reader) -> FileResponse:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="read_preview")
    path = request.app.state.settings.data_dir / "previews" / f"case-{case_id}.nii.gz"
    if not path.is_file():
        raise store.NotFound(f"preview of case {case_id}")
    return FileResponse(path, media_type="application/gzip")
