"""Outputs of `cryoplan plan`: plan.json, the minimum-temperature NIfTI, isotherm masks, figures and the
tumour-board report (HTML, and PDF through WeasyPrint)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure
from scipy import ndimage

from cryoplan import __version__
from cryoplan.imaging.io import write_nifti
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_directory, write_json, write_text
from cryoplan.planning.coverage import coverage_curves
from cryoplan.planning.pipeline import CasePlan, UnitPlan
from cryoplan.progress import Progress
from cryoplan.report import figures
from cryoplan.report.exports import write_exports
from cryoplan.thermal import Grid, Protocol
from cryoplan.thermal.calibration import validated_error_mm

_environment = Environment(
    loader=PackageLoader("cryoplan.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

ISOTHERMS_C = (0.0, -20.0, -40.0)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def protocol_document(protocol: Protocol) -> list[dict[str, Any]]:
    return [{"phase": phase.kind, "minutes": phase.minutes} for phase in protocol.phases]


def plan_document(plan: CasePlan) -> dict[str, Any]:
    """The plan.json document (schema_version 1)."""
    settings = plan.settings
    lesions = []
    frozen_total = frozen_liver_total = 0.0
    for unit in plan.units:
        cov = unit.coverage
        frozen_total += cov.frozen_volume_ml
        frozen_liver_total += cov.frozen_liver_ml or 0.0
        protocol = protocol_document(settings.protocol(unit.candidate.freeze_minutes))
        uncertainty = unit.uncertainty.to_dict() if unit.uncertainty is not None else None
        for lesion in cov.lesions:
            document = {
                "id": lesion.lesion_id,
                "planning_unit": unit.unit_id,
                "shared_with": [i for i in unit.lesion_ids if i != lesion.lesion_id],
                "imaging": plan.lesion_measurements.get(lesion.lesion_id),
                "probes": [
                    {**p.to_dict(), "path": unit.paths[n] if n < len(unit.paths) else None}
                    for n, p in enumerate(unit.candidate.probes)
                ],
                "organs": unit.exposure.to_dict() if unit.exposure is not None else None,
                "probe_spacing_mm": unit.candidate.spacing_mm,
                "protocol": protocol,
                "coverage": lesion.to_dict(),
                "frozen_volume_ml": _round(cov.frozen_volume_ml, 1),
                "frozen_liver_ml": _round(cov.frozen_liver_ml, 1),
                "frozen_liver_fraction": _round(cov.frozen_liver_fraction, 4),
                "critical_structures": cov.critical.to_dict(),
                "risks": [r.to_dict() for r in cov.risks if r.lesion_id in (None, lesion.lesion_id)],
                "simulations": unit.simulations,
                "simulation_grid_mm": unit.result.grid.spacing_mm,
                "success": unit.success.to_dict() if unit.success is not None else None,
                "uncertainty": uncertainty,
            }
            lesions.append(document)
    liver_ml = float(plan.anatomy.liver.sum()) * plan.anatomy.grid.voxel_volume_ml
    return {
        "schema_version": 1,
        "assessment": plan.assessment,
        "settings": {
            "lethal_isotherm_c": settings.lethal_isotherm_c,
            "margin_mm": settings.margin_mm,
            "success_rule": (
                f"the minimal margin of the {settings.lethal_isotherm_c:g} °C isotherm reaches "
                f"{settings.margin_mm:g} mm everywhere around each tumour, less half the grid's coarsest voxel"
            ),
            "confidence": settings.confidence if settings.robust_samples else None,
            "robust_samples": settings.robust_samples,
            "chart_coverage_target_pct": settings.coverage_target_pct,
            "max_probes": settings.max_probes,
            "probe_types": list(settings.probe_types),
            "freeze_minutes": list(settings.freeze_minutes),
            "spacing_mm": list(settings.spacing_mm),
            "min_vessel_calibre_mm": settings.min_vessel_calibre_mm,
            "critical_temperature_c": settings.critical_temperature_c,
            "paths": settings.paths,
            "entry_radius_mm": settings.entry_radius_mm,
            "grid_mm": settings.grid_mm,
            "position": settings.position,
            "clearances_mm": settings.clearances,
            "entries_lps_mm": {k: list(v) for k, v in settings.entries_lps_mm.items()},
        },
        "image_warnings": plan.image_warnings,
        "unknown_structures": list(plan.anatomy.body_model.unknown) if plan.anatomy.body_model else [],
        "lesions": lesions,
        "sessions": [session.to_dict() for session in plan.sessions],
        "liver_volume_ml": round(liver_ml, 1),
        "frozen_volume_ml": round(frozen_total, 1),
        "frozen_liver_ml": round(frozen_liver_total, 1),
        "frozen_liver_fraction": round(frozen_liver_total / liver_ml, 4) if liver_ml else None,
        "notes": plan.notes,
        "model_error_mm": validated_error_mm(),
        "timing_s": {k: round(v, 2) for k, v in plan.timing_s.items()},
        "cryoplan_version": __version__,
    }


def combined_min_temperature(plan: CasePlan) -> Volume:
    """Minimum temperature of every unit's final simulation on one axis-aligned grid (37 °C elsewhere)."""
    grids = [u.result.grid for u in plan.units]
    corners = np.vstack([np.vstack([g.origin_mm, g.extent_mm]) for g in grids])
    grid = Grid.around(corners, 0.0, min(g.spacing_mm for g in grids))
    if len(grids) == 1:
        return Volume(plan.units[0].result.min_temperature_c, grids[0].affine)
    combined = np.full(grid.shape, 37.0, dtype=np.float32)
    centres = grid.centres_mm()
    for unit in plan.units:
        index = np.moveaxis(unit.result.grid.index_of(centres), -1, 0)
        values = ndimage.map_coordinates(unit.result.min_temperature_c, index, order=1, mode="constant", cval=37.0)
        combined = np.minimum(combined, values.astype(np.float32))
    return Volume(combined, grid.affine)


def _probes_for_figure(unit: UnitPlan) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(f"P{n}", p.tip_lps_mm, p.entry_lps_mm) for n, p in enumerate(unit.candidate.probes, start=1)]


def _path_structures(plan: CasePlan) -> dict[str, Volume]:
    """The outlines of the path figure, on the image grid: skin, liver, lung (and gas), bone, bowel, vessels."""
    anatomy = plan.anatomy
    model = anatomy.body_model
    masks = {"liver": anatomy.liver, "vessels": anatomy.vessels}
    if model is not None:
        masks["skin"] = model.body
        lung = model.internal_gas.copy()
        if "lung" in model.structures:
            lung |= model.structures["lung"]
        masks["lung"] = lung
        masks["bone"] = model.bone
    elif anatomy.bone is not None:
        masks["bone"] = anatomy.bone
    if anatomy.bowel is not None:
        masks["bowel"] = anatomy.bowel
    return {name: plan.ct.with_array(mask.astype(np.uint8)) for name, mask in masks.items() if mask.any()}


def write_figures(plan: CasePlan, folder: Path) -> dict[str, list[dict[str, str]]]:
    """Every figure of the report, as PNG files under `folder`; returns captions by section."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = plan.settings
    written: dict[str, list[dict[str, str]]] = {
        "lesions": [],
        "overview": [],
        "histories": [],
        "coverage": [],
        "uncertainty": [],
    }
    ct = plan.ct

    def save(figure: Figure, name: str, section: str, caption: str) -> None:
        figures.save_figure(figure, folder / name)
        written[section].append({"path": f"figures/{name}", "caption": caption})

    curves = {}
    path_structures = _path_structures(plan)
    for unit in plan.units:
        temperature = unit.grid_volume
        affine = unit.result.grid.affine
        probes = _probes_for_figure(unit)
        structures = {}
        if "bile_duct" in unit.structures and unit.structures["bile_duct"].any():
            structures["bile_duct"] = Volume(unit.structures["bile_duct"].astype(np.float32), affine)
        if unit.structures["large_vessels"].any():
            structures["large_vessels"] = Volume(unit.structures["large_vessels"].astype(np.float32), affine)
        for lesion_id, mask in unit.lesion_masks.items():
            centre = unit.result.grid.origin_mm + np.argwhere(mask).mean(axis=0) * unit.result.grid.spacing_mm
            figure = figures.lesion_slices_figure(
                centre,
                temperature=temperature,
                tumour=Volume(mask.astype(np.float32), affine),
                ct=ct,
                margin=Volume(unit.margin_masks[lesion_id].astype(np.float32), affine),
                structures=structures,
                probes=probes,
                isotherms_c=ISOTHERMS_C,
                lethal_isotherm_c=settings.lethal_isotherm_c,
                title=f"{lesion_id}: minimum temperature isotherms",
            )
            save(
                figure,
                f"{lesion_id}_slices.png",
                "lesions",
                f"{lesion_id}: slices through the lesion centroid with the tumour (white), tumour + "
                f"{settings.margin_mm:g} mm (dashed), probes (yellow) and the 0, −20 and −40 °C isotherms "
                "of the full simulation.",
            )
        figure = figures.path_figure(
            ct,
            path_structures,
            ct.with_array(np.any([plan.anatomy.lesions[i] for i in unit.lesion_ids], axis=0).astype(np.uint8)),
            temperature,
            probes,
            isotherms_c=ISOTHERMS_C,
            lethal_isotherm_c=settings.lethal_isotherm_c,
            title=f"{unit.unit_id}:",
        )
        save(
            figure,
            f"{unit.lesion_ids[0]}_paths.png",
            "lesions",
            f"{', '.join(unit.lesion_ids)}: each probe's path from the skin (■) to its tip (●) in an oblique slice "
            "containing it, and axial, coronal and sagittal slices through the first path, with the skin, liver, "
            "lung, bone, bowel and vessels outlined, the tumour (white) and the 0, −20 and −40 °C isotherms.",
        )
        figure = figures.overview_3d_figure(
            temperature,
            {i: Volume(m.astype(np.float32), affine) for i, m in unit.lesion_masks.items()},
            lethal_isotherm_c=settings.lethal_isotherm_c,
            probes=probes,
            vessels=Volume(unit.structures["large_vessels"].astype(np.float32), affine),
            title=f"{unit.unit_id} ({', '.join(unit.lesion_ids)}): tumour, lethal isotherm, vessels, probe paths",
        )
        save(
            figure,
            f"{unit.unit_id}_overview_3d.png",
            "overview",
            f"{unit.unit_id}: 3-D view of the tumour, the {settings.lethal_isotherm_c:g} °C isotherm, the "
            f"large vessels and the probe paths (LPS mm).",
        )
        phases, start = [], 0.0
        for phase in settings.protocol(unit.candidate.freeze_minutes).phases:
            phases.append((phase.kind, start, start + phase.minutes))
            start += phase.minutes
        figure = figures.temperature_history_figure(
            unit.result.histories,
            isotherms_c=ISOTHERMS_C,
            phases=phases,
            title=f"{unit.unit_id}: temperature at the tumour edge and the nearest bile duct",
        )
        save(
            figure,
            f"{unit.unit_id}_temperature_history.png",
            "histories",
            f"{unit.unit_id}: temperature–time curves at the tumour edge (the point facing the strongest heat "
            "sink, or farthest from the probes) and at the bile duct voxel nearest the tumour.",
        )
        curves.update(coverage_curves(unit.result.min_temperature_c, unit.lesion_masks, unit.margin_masks))
        if unit.uncertainty is not None:
            lesion_id = unit.lesion_ids[0]
            mask = unit.lesion_masks[lesion_id]
            centre = unit.result.grid.origin_mm + np.argwhere(mask).mean(axis=0) * unit.result.grid.spacing_mm
            figure = figures.probability_map_figure(
                centre,
                unit.uncertainty.probability,
                Volume(mask.astype(np.float32), affine),
                margin=Volume(unit.margin_masks[lesion_id].astype(np.float32), affine),
                ct=ct,
                samples=unit.uncertainty.samples,
            )
            save(
                figure,
                f"{unit.unit_id}_probability.png",
                "uncertainty",
                f"{unit.unit_id}: probability that each voxel reaches {settings.lethal_isotherm_c:g} °C under "
                "placement error and tissue-property uncertainty (Monte Carlo); every margin met in "
                f"{100 * unit.uncertainty.probability_of_success:.0f} % of the samples.",
            )
    save(
        figures.coverage_curve_figure(curves, lethal_isotherm_c=settings.lethal_isotherm_c),
        "coverage_curve.png",
        "coverage",
        "Coverage curve: share of each tumour (and tumour + margin) colder than T, against T.",
    )
    return written


def render_plan_html(
    document: dict[str, Any], figure_sections: dict[str, list[dict[str, str]]], case_label: str
) -> str:
    """The tumour-board report as a standalone HTML page (figures referenced relatively)."""
    css = (Path(__file__).parent / "templates" / "plan.css").read_text(encoding="utf-8")
    return _environment.get_template("plan.html.j2").render(
        plan=document,
        figures=figure_sections,
        css=css,
        case_label=case_label,
        version=__version__,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_pdf(html: str, base: Path, path: Path) -> None:
    """Render the HTML report to PDF with WeasyPrint (Kozea), resolving figures against `base`."""
    from weasyprint import HTML  # optional heavy import (≈ 1 s): only when a PDF is written

    HTML(string=html, base_url=str(base)).write_pdf(path)


def write_plan_outputs(plan: CasePlan, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write plan.json, min_temperature.nii.gz, isotherm masks, figures, report.html, report.pdf and the DICOM
    and Slicer exports (`cryoplan.report.exports`).

    Everything is written into a temporary folder first and moved into `out_dir` on success.
    """
    document = plan_document(plan)
    if progress:
        progress("writing the report", 0.0)
    with atomic_directory(out_dir) as tmp:
        temperature = combined_min_temperature(plan)
        write_nifti(temperature, tmp / "min_temperature.nii.gz")
        outputs: dict[str, Any] = {
            "plan": "plan.json",
            "min_temperature": "min_temperature.nii.gz",
            "report_html": "report.html",
            "report_pdf": "report.pdf",
            "isotherms": [],
        }
        for t in ISOTHERMS_C:
            name = f"isotherm_{int(t)}c.nii.gz".replace("-", "minus")
            write_nifti(temperature.with_array((np.asarray(temperature.array) <= t).astype(np.uint8)), tmp / name)
            outputs["isotherms"].append(name)
        # DICOM and Slicer exports after the NIfTI maps: one that fails is listed, never fatal
        exports, outputs["failed_exports"] = write_exports(plan, temperature, tmp, ISOTHERMS_C)
        outputs.update(exports)
        figure_sections = write_figures(plan, tmp / "figures")
        outputs["figures"] = [f["path"] for section in figure_sections.values() for f in section]
        document["outputs"] = outputs
        case_label = (plan.assessment or {}).get("case_id") or "phantom case"
        html = render_plan_html(document, figure_sections, case_label)
        write_text(tmp / "report.html", html)
        write_pdf(html, tmp, tmp / "report.pdf")
        write_json(tmp / "plan.json", document)
    return document
