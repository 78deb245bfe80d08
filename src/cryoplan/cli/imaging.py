"""Commands of the imaging area: `cryoplan inspect`."""

from __future__ import annotations

import enum
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

from cryoplan.cli.app import app
from cryoplan.cli.display import progress_display
from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import MIN_LESION_DIAMETER_MM, Anatomy, load_anatomy, measure_lesions
from cryoplan.imaging.body import build_body_model, field_of_view_warnings
from cryoplan.imaging.body_figures import write_body_figure
from cryoplan.imaging.figures import COLOURS, write_lesion_figures
from cryoplan.imaging.inspection import inspection_document
from cryoplan.imaging.io import ImagingWarning
from cryoplan.output import atomic_directory, write_json


class Format(str, enum.Enum):
    json = "json"
    text = "text"


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(option, "NAME=VALUE", item)
        if name in pairs:
            raise InputError(f"{option} {name}", "each structure once", item)
        pairs[name] = value
    return pairs


def _label_values(items: list[str]) -> dict[str, int | list[int]]:
    mapping: dict[str, int | list[int]] = {}
    for name, text in _pairs(items, "--label").items():
        try:
            mapping[name] = [int(v) for v in text.split(",")]
        except ValueError:
            raise InputError(f"--label {name}", "whole label values, comma-separated", text) from None
    return mapping


@app.command()
def inspect(
    image: Path = typer.Argument(..., help="Image: a DICOM series folder, or a NIfTI (.nii, .nii.gz) or NRRD file."),
    labels: Path | None = typer.Option(None, "--labels", help="Label map (NIfTI, NRRD or DICOM-SEG) of the image."),
    label_preset: str | None = typer.Option(
        None,
        "--label-preset",
        help="liver_tumour (1 liver, 2 tumour), totalsegmentator (CT 'total') or totalsegmentator_mr.",
    ),
    label: list[str] = typer.Option(
        [], "--label", help="NAME=VALUE[,VALUE…] for a structure of the label map (repeatable)."
    ),
    mask: list[str] = typer.Option([], "--mask", help="NAME=FILE: one binary mask per structure (repeatable)."),
    segments: Path | None = typer.Option(None, "--segments", help="Couinaud segment map (labels 1–8) on the image."),
    series: str | None = typer.Option(
        None, "--series", help="SeriesInstanceUID to read from a folder with several series."
    ),
    resample_labels: bool = typer.Option(
        False, "--resample-labels", help="Resample labels on another grid (nearest neighbour)."
    ),
    min_voxels: int = typer.Option(1, "--min-voxels", help="Smallest tumour component counted as a lesion, voxels."),
    min_lesion_diameter: float = typer.Option(
        MIN_LESION_DIAMETER_MM,
        "--min-lesion-diameter",
        help="Lesions with a smaller maximal diameter (mm) are listed but flagged not to be planned.",
    ),
    margin: float = typer.Option(
        5.0, "--margin", help="Ablative margin (mm) for the check of lesions near the image's edge."
    ),
    format: Format = typer.Option(Format.text, "--format", help="json or text on stdout."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Folder for inspect.json, the body figure and one figure per lesion."
    ),
) -> None:
    """Measure the liver, its structures and each lesion (size, position, distances to ducts and vessels), and
    say what the image leaves out (body cut by the field of view, lesions near its edge, thick or few slices)."""

    label_map = _label_values(label) if label else None
    masks: dict[str, str | Path] | None = {name: Path(path) for name, path in _pairs(mask, "--mask").items()} or None
    with (
        warnings.catch_warnings(record=True) as caught,
        progress_display(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress,
    ):
        warnings.simplefilter("always", ImagingWarning)
        task = progress.add_task("reading image and labels", total=None)
        volume, anatomy = load_anatomy(image, labels, label_preset, label_map, masks, segments, series, resample_labels)
        progress.update(task, description="measuring lesions")
        lesions = measure_lesions(anatomy, min_voxels, min_lesion_diameter) if anatomy is not None else []
        progress.update(task, description="outlining the body")
        body = build_body_model(volume, anatomy)
        planned = [lesion.id for lesion in lesions if not lesion.below_min_size]
        image_warnings = field_of_view_warnings(body, margin, planned)
    notes = [str(w.message) for w in caught if issubclass(w.category, ImagingWarning)]
    for note in notes:
        print(f"cryoplan: warning: {note}", file=sys.stderr)
    for warning in image_warnings:
        print(f"cryoplan: warning: {warning.code}: {warning.message}", file=sys.stderr)
    document = inspection_document(volume, anatomy, lesions, notes, body, image_warnings, min_lesion_diameter)
    if output is not None:
        with atomic_directory(output) as folder:
            write_json(folder / "inspect.json", document)
            write_body_figure(body, folder / "body.png", image_warnings)
            if anatomy is not None:
                # the lesion views outline the liver's own structures; the organs of a full label map would
                # crowd a 10 cm view
                shown = {name: mask for name, mask in anatomy.masks.items() if name in COLOURS}
                write_lesion_figures(volume, Anatomy(anatomy.grid, shown, anatomy.couinaud), lesions, folder)
    if format is Format.json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_text(document)


def _print_text(document: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)  # one line per lesion, however narrow the terminal
    image = document["image"]
    console.print(
        f"image {image['shape']} voxels, spacing {image['spacing_mm']} mm, orientation {image['orientation']}, "
        f"modality {image['modality'] or 'unknown'}"
    )
    for name, structure in document["structures"].items():
        console.print(f"  {name:<17} {structure['volume_ml']:10.2f} ml")
    for lesion in document["lesions"]:

        def mm(value: float | None) -> str:
            return "–" if value is None else f"{value:.1f} mm"

        console.print(
            f"{lesion['id']}: {lesion['volume_ml']:.2f} ml, max diameter {mm(lesion['max_diameter_mm'])}, axial "
            f"{mm(lesion['axial_diameter_mm'])}, centroid (LPS) {lesion['centroid_lps_mm']} mm, segment "
            f"{lesion['couinaud_segment'] or '–'}; bile duct {mm(lesion['distance_to_bile_duct_mm'])}, nearest vessel "
            f"{lesion['nearest_vessel'] or '–'} {mm(lesion['distance_to_major_vessel_mm'])}"
            + (
                f"; heat sink: {lesion['heat_sink_vessel']} {lesion['heat_sink_vessel_calibre_mm']:.1f} mm"
                if lesion["heat_sink"]
                else ""
            )
            + f" (±{lesion['resolution_mm']:.1f} mm, one voxel)"
            + (f"; below {document['min_lesion_diameter_mm']:g} mm: not planned" if lesion["below_min_size"] else "")
        )
    if not document["lesions"]:
        console.print("no lesions")
    body = document["body"]
    console.print(
        f"body ({body['modality']}): cut by the field of view on {', '.join(body['cut_sides']) or 'no side'}; "
        f"not labelled: {', '.join(body['unknown_structures']) or 'none'}"
    )
