"""Commands of the assess area: `cryoplan assess`."""

from __future__ import annotations

import enum
import io
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cryoplan.case import Case
from cryoplan.cli.app import app
from cryoplan.clinical import (
    DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML,
    Assessment,
    CaseRecord,
    assess_record,
    read_case_record,
)
from cryoplan.clinical.fhir_report import assessment_bundle
from cryoplan.errors import InputError
from cryoplan.imaging.case_images import case_with_measured_lesions
from cryoplan.output import write_text
from cryoplan.report.assessment import render_assessment_html


class Format(str, enum.Enum):
    json = "json"
    text = "text"
    html = "html"
    fhir = "fhir"


@dataclass(frozen=True)
class AssessedCase:
    """One case file's assessment, the case it was made from (lesions filled from the images) and the record as
    read (a FHIR bundle's lab bounds kept), which a plan of the case assesses the same way."""

    path: Path
    assessment: Assessment
    case: Case
    record: CaseRecord


def assess_file(path: Path, cryoshock_tumour_volume_ml: float = DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML) -> AssessedCase:
    """Read a case (file or FHIR bundle), fill its lesions from the images it names, and assess it.

    Lesion sizes and distances missing from a case file are measured on the images it names; typed values
    are kept, and disagreements over 3 mm are flagged in the assessment.

    Raises
    ------
    InputError
        When the case cannot be read or its images do not load, naming the field.
    """
    record = read_case_record(path)
    try:
        case, flags = case_with_measured_lesions(record.case)
    except InputError as error:  # an image's error names the image; among several cases, name the case too
        raise InputError(f"{path}: {error.field}", error.expected, error.got) from None
    assessment = assess_record(
        replace(record, case=case), cryoshock_tumour_volume_ml=cryoshock_tumour_volume_ml, imaging_flags=flags
    )
    return AssessedCase(path, assessment, case, record)


def _text(assessments: list[Assessment], console: Console) -> None:
    for a in assessments:
        console.rule(f"{a.case_id}: {a.diagnosis.replace('_', ' ')}  verdict: {a.verdict}")
        scores = Table("score", "result", "detail", box=None, show_edge=False)
        cp = a.child_pugh
        scores.add_row(
            "Child-Pugh",
            cp.label if cp else "–",
            ", ".join(f"{k} {v}" for k, v in cp.components.items()) if cp else "inputs missing",
        )
        scores.add_row(
            "ALBI",
            f"grade {a.albi.grade}" if a.albi else "–",
            f"score {a.albi.score:.2f}" if a.albi else "inputs missing",
        )
        meld = [("MELD", a.meld.meld), ("MELD-Na", a.meld.meld_na), ("MELD 3.0", a.meld.meld_3)]
        scores.add_row(
            "MELD",
            " / ".join("–" if v is None else str(v) for _, v in meld),
            a.meld.note or "MELD / MELD-Na / MELD 3.0",
        )
        if a.bclc is not None:
            scores.add_row(
                "BCLC 2022",
                a.bclc.stage or "undetermined",
                f"{a.bclc.reason} (burden and ECOG alone: {a.bclc.burden_stage or '–'})",
            )
        if a.transplant is not None:
            t = a.transplant
            scores.add_row("transplant", "", f"Milan {t.milan}, UCSF {t.ucsf}, up-to-seven {t.up_to_seven}")
        console.print(scores)
        rows = Table("criterion", "value", "status", "note", box=None, show_edge=False)
        for c in a.criteria:
            value = "–" if c.value is None else (f"{c.value:.3g}" if isinstance(c.value, float) else str(c.value))
            rows.add_row(c.id, f"{value} {c.unit or ''}".strip(), c.status, c.note)
        console.print(rows)
        for r in a.recommendations:
            console.print(Text.assemble(f"• {r.text} ", (f"({r.reason}; {r.source})", "dim")))
        if a.missing_inputs:
            console.print(f"missing inputs: {', '.join(a.missing_inputs)}", highlight=False)
        for text in a.imaging_flags:
            console.print(f"images disagree: {text}", highlight=False)
        for text in a.input_notes:
            console.print(f"note: {text}", highlight=False)
        for text in a.unused_fhir_observations:
            console.print(f"FHIR entry not used: {text}", highlight=False)


@app.command("assess")
def assess_command(
    cases: list[Path] = typer.Argument(
        ..., help="Case files (YAML or JSON) or FHIR R4 Bundles (JSON).", show_default=False
    ),
    output_format: Format = typer.Option(
        Format.text,
        "--format",
        "-f",
        help="json: an array of assessments; fhir: a FHIR R4 transaction Bundle (a DiagnosticReport per case, "
        "the scores as Observations); text: tables; html: a standalone page.",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of standard output."),
    cryoshock_tumour_volume_ml: float = typer.Option(
        DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML,
        min=0,
        help="Total tumour volume (ml) above which a cryoshock caution is given; a cryoplan default, not a guideline.",
    ),
) -> None:
    """Assess cases for liver cryoablation: scores, staging, selection criteria, verdict, recommendations.

    Child-Pugh, ALBI, MELD / MELD-Na / MELD 3.0, BCLC 2022, Milan / UCSF / up-to-seven, then the selection
    criteria with their status, the verdict, and recommendations with reasons and sources. A case that
    cannot be read is reported on one line and the others are assessed; the exit status is then 2.
    """
    good, failed = [], 0
    for path in cases:
        try:
            good.append(assess_file(path, cryoshock_tumour_volume_ml))
        except InputError as error:  # reported on its line; the other cases go on
            typer.echo(f"cryoplan: error: {error}", err=True)
            failed += 1
    if good:
        _emit([o.assessment for o in good], [o.case for o in good], output_format, output)
    if failed:
        raise typer.Exit(2)


def _emit(assessments: list[Assessment], read_cases: list[Case], output_format: Format, output: Path | None) -> None:
    if output_format is Format.json:
        text = json.dumps([a.to_dict() for a in assessments], indent=2, ensure_ascii=False) + "\n"
    elif output_format is Format.fhir:
        text = json.dumps(assessment_bundle(assessments), indent=2, ensure_ascii=False) + "\n"
    elif output_format is Format.html:
        text = render_assessment_html(assessments, read_cases)
    else:
        # Case text is printed as given: markup off, so "[#/volume]" in a FHIR display stays.
        buffer = io.StringIO()
        console = Console(file=buffer, width=120, color_system=None, markup=False) if output else Console(markup=False)
        _text(assessments, console)
        if not output:
            return
        text = buffer.getvalue()
    if output:
        write_text(output, text)
    else:
        typer.echo(text, nl=False)


def bundled_example_cases() -> list[Path]:
    """The example case files shipped with the package (YAML case files and FHIR bundles), sorted by name."""
    folder = resources.files("cryoplan") / "examples"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith((".yaml", ".json")))
