"""Commands of the planning area: `cryoplan plan`, `cryoplan verify` and `cryoplan demo`."""

from __future__ import annotations

import enum
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cryoplan.case import Case, parse_case
from cryoplan.cli.app import app
from cryoplan.cli.display import progress_display, stderr
from cryoplan.clinical import CaseRecord, read_case_file, read_case_record
from cryoplan.errors import InputError
from cryoplan.imaging import ImagingWarning, Volume, read_labels, read_volume
from cryoplan.imaging.phantom import Phantom, demo_phantom
from cryoplan.output import atomic_directory, write_json
from cryoplan.planning.anatomy import planning_anatomy, vessel_lumen
from cryoplan.planning.charts import isotherm_chart
from cryoplan.planning.coverage import isotherm_depth_mm
from cryoplan.planning.margins import verify_margins
from cryoplan.planning.organs import tissue_label_volume
from cryoplan.planning.pipeline import load_source, plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.report.exports import ExportWarning
from cryoplan.report.figures import margin_map_figure, save_figure
from cryoplan.report.plan_report import write_plan_outputs
from cryoplan.thermal import DEFAULT_PROTOCOL, ProbePlacement, get_probe, parse_protocol


class Format(str, enum.Enum):
    json = "json"
    text = "text"


class Position(str, enum.Enum):
    supine = "supine"
    prone = "prone"
    left_decubitus = "left_decubitus"


class Paths(str, enum.Enum):
    any = "any"
    parallel = "parallel"
    converging = "converging"


def _numbers(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(option, "comma-separated numbers", text) from None
    if not values:
        raise InputError(option, "at least one value", text)
    return values


class _Bar:
    """A rich progress bar on stderr fed by the pipeline's ``progress(label, fraction)`` callback."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task: TaskID | None = None

    def __call__(self, label: str | None, fraction: float) -> None:
        if label is not None:
            if self.task is not None:
                self.progress.update(self.task, completed=1.0)
            self.task = self.progress.add_task(label, total=1.0)
        if self.task is not None:
            self.progress.update(self.task, completed=fraction)


def _progress() -> Progress:
    return progress_display(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f} %"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _settings(
    margin_mm: float,
    lethal_isotherm_c: float,
    max_probes: int,
    probe_types: str,
    freeze_minutes: str,
    spacing_mm: str,
    grid_mm: float,
    critical_temperature_c: float,
    freezes: int,
    paths: Paths,
    clearances: list[str],
    entries: list[str],
    position: Position,
) -> PlanSettings:
    return PlanSettings(
        lethal_isotherm_c=lethal_isotherm_c,
        margin_mm=margin_mm,
        max_probes=max_probes,
        probe_types=tuple(p.strip() for p in probe_types.split(",") if p.strip()),
        freeze_minutes=_numbers(freeze_minutes, "--freeze-minutes"),
        spacing_mm=_numbers(spacing_mm, "--spacing-mm"),
        grid_mm=grid_mm,
        critical_temperature_c=critical_temperature_c,
        freeze_count=freezes,
        paths=paths.value,
        clearances_mm={name: values[0] for name, values in (_pair(c, "--clearance", 1) for c in clearances)},
        entries_lps_mm={name: (x, y, z) for name, (x, y, z) in (_pair(e, "--entry", 3) for e in entries)},
        position=position.value,
    ).check()


def _pair(text: str, option: str, count: int) -> tuple[str, tuple[float, ...]]:
    """(NAME, values) from an option's ``NAME=v`` (count 1) or ``NAME=x,y,z`` (count 3)."""
    name, sep, values = text.partition("=")
    expected = "NAME=mm (e.g. lung=8)" if count == 1 else "LESION=x,y,z in LPS mm (e.g. L1=-80,-150,120)"
    if not sep or not name.strip():
        raise InputError(option, expected, text)
    numbers = _numbers(values, option)
    if len(numbers) != count:
        raise InputError(option, expected, text)
    return name.strip(), numbers


def _summary(document: dict[str, Any], out_dir: Path) -> None:
    for lesion in document["lesions"]:
        c = lesion["coverage"]
        protocol = " – ".join(f"{p['phase'].replace('_', ' ')} {p['minutes']:g}" for p in lesion["protocol"])
        typer.echo(
            f"{lesion['id']}: {len(lesion['probes'])} × {lesion['probes'][0]['type']}, {protocol} min; "
            f"tumour + {c['margin_mm']:g} mm covered {c['margin_covered_pct']:.1f} % at {c['lethal_isotherm_c']:g} °C, "
            f"min margin {c['min_margin_mm']} mm, frozen liver {lesion['frozen_liver_ml']} ml"
        )
        success = lesion.get("success")
        if success:
            low, high = success["probability_interval_95"]
            typer.echo(
                f"  probability every margin is met {success['probability_of_success']:.2f} (95 % interval "
                f"{low:.2f}–{high:.2f}, {success['samples']} samples, target {success['confidence']:g}): "
                f"{success['decision'].replace('_', ' ')}"
            )
        for risk in lesion["risks"]:
            typer.echo(f"  flag {risk['code']}: {risk['detail']}")
    typer.echo(f"wrote {out_dir / 'report.pdf'}, {out_dir / 'report.html'} and {out_dir / 'plan.json'}")


def _run_plan(
    source: CaseRecord | Phantom,
    out_dir: Path,
    settings: PlanSettings,
    uncertainty: int,
    scheduler: str | None,
    output_format: Format,
    case: Case | None = None,
    seed: int = 0,
) -> None:

    with warnings.catch_warnings(record=True) as caught, _progress() as progress:
        warnings.simplefilter("always", ImagingWarning)
        warnings.simplefilter("always", ExportWarning)
        bar = _Bar(progress)
        plan = plan_case(
            source,
            uncertainty_samples=uncertainty,
            scheduler=scheduler,
            progress=bar,
            settings=settings,
            case=case,
            seed=seed,
        )
        write_plan_outputs(plan, out_dir, progress=bar)
    for warning in caught:  # one line each, as every message of the command line
        if issubclass(warning.category, ImagingWarning | ExportWarning):
            print(f"cryoplan: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    document = json.loads((out_dir / "plan.json").read_text(encoding="utf-8"))
    if output_format is Format.json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _summary(document, out_dir)


#: Most uncertainty samples the sequential test of `--confidence` draws per candidate plan.
ROBUST_SAMPLES = 60

_PLAN_OPTIONS = dict(
    margin_mm=typer.Option(
        5.0, "--margin-mm", help="Margin around the tumour the lethal isotherm must cover (0–10 mm)."
    ),
    lethal_isotherm_c=typer.Option(
        -20.0, "--lethal-isotherm", help="Lethal isotherm, °C (−20 double freeze, −40 single)."
    ),
    max_probes=typer.Option(6, "--max-probes", help="Most probes per planning unit."),
    probe_types=typer.Option("17g-sphere,17g-rod,2.4mm", "--probe-types", help="Library probes the planner may use."),
    freeze_minutes=typer.Option("10,15", "--freeze-minutes", help="Candidate minutes per freeze."),
    spacing_mm=typer.Option("10,12.5,15,17.5,20", "--spacing-mm", help="Candidate probe spacings, mm."),
    grid_mm=typer.Option(1.0, "--grid-mm", help="Grid spacing of the final full simulation, mm."),
    critical_temperature_c=typer.Option(
        -20.0, "--critical-temperature", help="Bile ducts and gallbladder should stay warmer, °C."
    ),
    freezes=typer.Option(2, "--freezes", help="1 (single) or 2 (double freeze with a passive thaw)."),
)


@app.command("plan")
def plan_command(
    case_file: Path = typer.Argument(
        ..., help="Case file (YAML/JSON) whose imaging section names the image and its segmentation."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder for plan.json, the NIfTI/DICOM-SEG outputs, figures and the report."
    ),
    uncertainty: int = typer.Option(
        0, "--uncertainty", help="Monte Carlo samples of the uncertainty analysis (0: none)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a LocalCluster)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    output_format: Format = typer.Option(Format.text, "--format", "-f", help="json: print plan.json; text: a summary."),
    margin_mm: float = _PLAN_OPTIONS["margin_mm"],
    lethal_isotherm_c: float = _PLAN_OPTIONS["lethal_isotherm_c"],
    max_probes: int = _PLAN_OPTIONS["max_probes"],
    probe_types: str = _PLAN_OPTIONS["probe_types"],
    freeze_minutes: str = _PLAN_OPTIONS["freeze_minutes"],
    spacing_mm: str = _PLAN_OPTIONS["spacing_mm"],
    grid_mm: float = _PLAN_OPTIONS["grid_mm"],
    critical_temperature_c: float = _PLAN_OPTIONS["critical_temperature_c"],
    freezes: int = _PLAN_OPTIONS["freezes"],
    paths: Paths = typer.Option(
        Paths.any,
        "--paths",
        help="parallel probes; converging ones (skin entries within 15 mm of one point, diverging to the tips); "
        "or any (both, and the search may tilt probes about their entries).",
    ),
    clearance: list[str] = typer.Option(
        [], "--clearance", help="Clearance a path keeps from a structure, NAME=mm (repeatable), e.g. lung=8."
    ),
    entry: list[str] = typer.Option(
        [], "--entry", help="Skin entry point of a lesion's probes, LESION=x,y,z in LPS mm (repeatable)."
    ),
    position: Position = typer.Option(Position.supine, "--position", help="The patient's position on the table."),
    confidence: float | None = typer.Option(
        None,
        "--confidence",
        help="Plan robustly: accept a plan only when its probability that every margin is met under placement, "
        f"tissue and probe error reaches this (e.g. 0.9; a sequential test of up to {ROBUST_SAMPLES} samples).",
    ),
) -> None:
    """Plan a case: assessment, imaging, probe placement, full simulation with vessels, coverage, report."""

    settings = _settings(
        margin_mm,
        lethal_isotherm_c,
        max_probes,
        probe_types,
        freeze_minutes,
        spacing_mm,
        grid_mm,
        critical_temperature_c,
        freezes,
        paths,
        clearance,
        entry,
        position,
    )
    if confidence is not None:
        settings = replace(settings, confidence=confidence, robust_samples=ROBUST_SAMPLES).check()
    # The record, not only its case: the plan's assessment keeps a FHIR bundle's lab bounds, as `assess` does.
    _run_plan(read_case_record(case_file), output, settings, uncertainty, scheduler, output_format, seed=seed)


DEMO_CASE = {
    "schema_version": 1,
    "case_id": "demo-phantom-hcc",
    "patient": {"age": 62, "sex": "male", "ecog": 0},
    "diagnosis": {
        "type": "hcc",
        "cirrhosis": True,
        "liver_disease": "hcv",
        "vascular_invasion": False,
        "extrahepatic_spread": False,
    },
    "labs": {
        "bilirubin": {"value": 0.9, "unit": "mg/dL"},
        "albumin": {"value": 4.0, "unit": "g/dL"},
        "inr": 1.1,
        "creatinine": {"value": 0.8, "unit": "mg/dL"},
        "sodium": {"value": 139, "unit": "mmol/L"},
        "platelets": {"value": 150, "unit": "10^9/L"},
    },
    "clinical": {"ascites": "none", "encephalopathy_grade": 0},
    "lesions": [
        {"id": "L1", "diameter_mm": 28, "segment": 8, "distance_to_bile_duct_mm": 6, "distance_to_major_vessel_mm": 5}
    ],
}


@app.command("demo")
def demo_command(
    output: Path = typer.Option(Path("cryoplan-demo"), "--output", "-o", help="Folder to write the demo report into."),
    uncertainty: int = typer.Option(
        0, "--uncertainty", help="Monte Carlo samples of the uncertainty analysis (0: none)."
    ),
    output_format: Format = typer.Option(Format.text, "--format", "-f", help="json: print plan.json; text: a summary."),
) -> None:
    """Plan the built-in phantom case (a 28 mm HCC in segment 8 beside the right hepatic vein, a bile duct
    6 mm away, Child-Pugh A) and write the report into ./cryoplan-demo/."""

    stderr.print("building the demo phantom (1 mm CT with its labels)")
    _run_plan(
        demo_phantom(),
        output,
        PlanSettings(),
        uncertainty,
        None,
        output_format,
        case=parse_case(DEMO_CASE, "demo case"),
    )


def _read_probes(
    plan_file: Path,
) -> tuple[np.ndarray, list[ProbePlacement] | None, str, str | None]:
    """The probes of a plan.json (every lesion's, each once) or of a JSON list of probes, in the
    pre-procedural frame: (tips (n, 3), placements (None unless every probe has a direction), probe type,
    the plan's protocol text or None)."""

    try:
        document = json.loads(plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError("--probes", "a plan.json or a JSON list of probes", str(plan_file)) from error
    probes, protocol = document, None
    if isinstance(document, dict):
        lesions = document.get("lesions") or []
        probes = [p for lesion in lesions for p in lesion.get("probes", [])]
        try:
            protocols = {
                ",".join(
                    f"{p['phase']}:{float(p['minutes']):g}"
                    + (f":{float(p['withdrawal_mm']):g}" if "withdrawal_mm" in p else "")
                    for p in lesion["protocol"]
                )
                for lesion in lesions
                if lesion.get("protocol")
            }
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(
                "--probes.protocol", "phases with phase and minutes (as plan.json writes them)", str(plan_file)
            ) from None
        if len(protocols) > 1:
            raise InputError(
                "--probes",
                "a plan with one protocol (or a JSON list of this ablation's probes)",
                " | ".join(sorted(protocols)),
            )
        protocol = protocols.pop() if protocols else None
    if not isinstance(probes, list) or not probes:
        raise InputError("--probes", "probes with tip_lps_mm (a plan.json or a JSON list)", str(plan_file))
    unique: dict[tuple[str, tuple[float, ...], tuple[float, ...] | None], None] = {}
    for n, probe in enumerate(probes):
        try:
            tip = tuple(float(v) for v in probe["tip_lps_mm"])
            direction = tuple(float(v) for v in probe["direction"]) if probe.get("direction") is not None else None
            probe_type = str(probe.get("type", "17g-rod"))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(
                f"--probes[{n}]", "a probe with tip_lps_mm: [x, y, z] (and direction: [dx, dy, dz])", str(plan_file)
            ) from None
        if len(tip) != 3 or (direction is not None and len(direction) != 3):
            raise InputError(f"--probes[{n}]", "tip_lps_mm and direction with three coordinates", str(plan_file))
        get_probe(probe_type, field=f"--probes[{n}].type")
        unique.setdefault((probe_type, tip, direction), None)  # lesions sharing a plan list the same probes
    tips = np.array([tip for _, tip, _ in unique])
    placements = None
    if all(direction is not None for _, _, direction in unique):
        placements = []
        for n, (probe_type, tip, direction) in enumerate(unique):
            try:
                placements.append(ProbePlacement(probe_type, np.array(tip), np.array(direction)))
            except InputError as error:
                raise InputError(f"--probes[{n}].{error.field.split('.')[-1]}", error.expected, error.got) from None
    return tips, placements, next(iter(unique))[0], protocol


def _case_anatomy(case_file: Path, pre_image: Volume) -> tuple[Volume, Volume]:
    """The large vessels (hepatic and portal veins, IVC, aorta) of the plan's case and the tissues its plan
    simulated, on the pre-procedural image's grid."""

    case, _ = read_case_file(case_file)
    ct, anatomy, _ = load_source(case)
    if not ct.same_grid(pre_image):
        raise InputError("--case", "the case whose image is the pre-procedural image (--pre-image)", str(case_file))
    planning, _ = planning_anatomy(ct, anatomy)
    assert planning.body_model is not None  # `planning_anatomy` always builds it
    tissues = tissue_label_volume(planning.body_model, planning.liver, planning.lesions.values())
    return pre_image.with_array(vessel_lumen(anatomy).astype(np.uint8)), tissues


def _lethal_depth(
    probe_id: str, protocol: str, lethal_isotherm_c: float, grid_mm: float, given_mm: float | None
) -> tuple[float, str]:
    """Depth of the lethal isotherm behind the ice edge, for the erosion: given, or from the probe and
    protocol's isotherm chart."""

    if given_mm is not None:
        return given_mm, "given (--lethal-depth-mm)"
    chart = isotherm_chart(probe_id, protocol, grid_mm)
    spacing = [chart.radial_mm[1] - chart.radial_mm[0], chart.axial_mm[1] - chart.axial_mm[0]]
    depth = isotherm_depth_mm(chart.min_temperature_c, spacing, lethal_isotherm_c)
    return depth, f"isotherm chart of {probe_id}, {protocol}"


@app.command("verify")
def verify_command(
    tumour: Path = typer.Option(..., "--tumour", help="Tumour segmentation on the pre-procedural image."),
    pre_image: Path = typer.Option(..., "--pre-image", help="Pre-procedural CT or MR."),
    intra_image: Path = typer.Option(..., "--intra-image", help="Intraprocedural CT with the ice ball."),
    ice: Path | None = typer.Option(
        None, "--ice", help="Ice-ball mask on the intraprocedural image (segmented when absent)."
    ),
    probes: Path | None = typer.Option(
        None,
        "--probes",
        help="plan.json, or a JSON list of probes {type, tip_lps_mm, direction} in the pre-procedural frame; "
        "with directions the simulation is re-fitted to the observed ice.",
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Protocol delivered, e.g. freeze:10,passive_thaw:5,freeze:10 (default: the plan's)."
    ),
    case_file: Path | None = typer.Option(
        None,
        "--case",
        help="The plan's case file, whose image is the pre-procedural image: its large vessels become heat "
        "sinks of the re-fit, which runs in the tissues the plan simulated.",
    ),
    margin_mm: float = typer.Option(5.0, "--margin-mm", help="Required minimal margin, mm."),
    lethal_isotherm_c: float = typer.Option(-20.0, "--lethal-isotherm", help="Lethal isotherm, °C."),
    lethal_depth_mm: float | None = typer.Option(
        None,
        "--lethal-depth-mm",
        help="Without a re-fit: depth of the lethal isotherm behind the ice edge, mm; default: from the "
        "probe's isotherm chart.",
    ),
    refit_grid_mm: float = typer.Option(2.0, "--refit-grid-mm", help="Grid of the re-fitted simulations, mm."),
    deformable: bool = typer.Option(False, "--deformable", help="Refine the rigid registration with a B-spline."),
    output_format: Format = typer.Option(Format.json, "--format", "-f", help="json or text."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for margins.json and margin_map.png."),
    seed: int = typer.Option(0, "--seed", help="Seed of the registration's sampling."),
) -> None:
    """Check the margin reached during the procedure: register, segment the ice ball, re-fit the simulation
    to it, measure, give a verdict."""

    tips, placements, probe_id, plan_protocol = (
        _read_probes(probes) if probes is not None else (None, None, "17g-rod", None)
    )
    delivered = (
        parse_protocol(protocol, field="--protocol")
        if protocol is not None
        else parse_protocol(plan_protocol, field="--probes.protocol")
        if plan_protocol
        else DEFAULT_PROTOCOL
    )
    pre = read_volume(pre_image)
    intra = read_volume(intra_image)
    tumour_volume = read_labels(tumour, pre)
    ice_volume = read_labels(ice, intra) if ice is not None else None
    vessel_volume, tissue_volume = _case_anatomy(case_file, pre) if case_file is not None else (None, None)
    depth, depth_source = _lethal_depth(probe_id, str(delivered), lethal_isotherm_c, 2.0, lethal_depth_mm)
    with _progress() as progress:
        report = verify_margins(
            tumour_volume,
            intra,
            pre_image=pre,
            ice=ice_volume,
            probes=placements,
            probe_tips_lps=tips,
            protocol=delivered,
            vessels=vessel_volume,
            tissues=tissue_volume,
            lethal_depth_mm=depth,
            lethal_isotherm_c=lethal_isotherm_c,
            margin_mm=margin_mm,
            deformable=deformable,
            refit_grid_mm=refit_grid_mm,
            seed=seed,
            progress=_Bar(progress),
        )
    document = report.to_dict()
    document["lethal_depth_source"] = depth_source if report.lethal_zone_method == "erosion" else None
    if output is not None:
        with atomic_directory(output) as tmp:
            write_json(tmp / "margins.json", document)
            if (
                report.tumour is not None
                and report.ice is not None
                and report.lethal is not None
                and report.surface_margin_mm is not None
            ):
                save_figure(
                    margin_map_figure(
                        intra,
                        report.tumour,
                        report.ice,
                        report.lethal,
                        report.surface_margin_mm,
                        margin_mm=margin_mm,
                        title=f"Margin map ({report.verdict})",
                    ),
                    tmp / "margin_map.png",
                )
    if output_format is Format.json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        lethal_zone = "re-fitted simulation" if report.lethal_zone_method == "refitted_simulation" else "eroded ice"
        typer.echo(
            f"verdict: {report.verdict}; ice margin {document['ice_min_margin_mm']} mm, lethal margin "
            f"{document['lethal_min_margin_mm']} mm ({lethal_zone}), tumour + {margin_mm:g} mm covered "
            f"{document['margin_covered_pct']} %"
        )
        if report.fit is not None:
            fit = document["fit"]
            typer.echo(
                f"  fit: {fit['parameter']} {fit['value']} ({fit['simulations']} simulations), ice Dice "
                f"{fit['ice_dice']}, observed {fit['observed_ice_ml']} ml, simulated {fit['simulated_ice_ml']} ml"
            )
        for reason in report.reasons:
            typer.echo(f"  {reason}")
