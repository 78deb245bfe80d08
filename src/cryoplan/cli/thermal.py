"""Commands of the thermal area: `cryoplan probes`, `cryoplan isotherms`, `cryoplan simulate`, `cryoplan validate`."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cryoplan.cli.app import app
from cryoplan.cli.display import progress_display
from cryoplan.errors import InputError
from cryoplan.output import atomic_directory, write_json
from cryoplan.planning.spec import load_spec, run_spec
from cryoplan.thermal import PROBES, load_medium, parse_protocol
from cryoplan.thermal.calibration import CALIBRATION_GRID_MM, validate
from cryoplan.thermal.chart import isotherm_chart, probe_layout
from cryoplan.thermal.figures import isotherm_profile_figure, validation_figure
from cryoplan.thermal.probes import ProbeType, load_probe_file

_FORMATS = ("json", "table")


def _check_format(value: str) -> str:
    if value not in _FORMATS:
        raise InputError("--format", f"one of {', '.join(_FORMATS)}", value)
    return value


def _parse_temperatures(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InputError("--isotherms", 'comma-separated temperatures in °C, e.g. "0,-20,-40"', text) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise InputError("--isotherms", 'comma-separated finite temperatures in °C, e.g. "0,-20,-40"', text)
    return values


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on stderr; yields a callback taking the completed fraction."""
    with progress_display(
        TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task(label, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


def _probe_document(probe: ProbeType) -> dict[str, Any]:
    cooling = probe.cooling
    return {
        "id": probe.id,
        "family": probe.family,
        "diameter_mm": probe.diameter_mm,
        "active_length_mm": probe.active_length_mm,
        "tip_offset_mm": probe.tip_offset_mm,
        "working_length_mm": probe.working_length_mm,
        "description": probe.description,
        "source": probe.source,
        "cryogen_temperature_c": cooling.cryogen_temperature_c,
        "heat_transfer_w_m2k": cooling.heat_transfer_w_m2k,
        "heat_transfer_sd_w_m2k": cooling.heat_transfer_sd_w_m2k,
        "proximal_cooled_length_mm": cooling.proximal_cooled_length_mm,
        "proximal_cooled_length_sd_mm": cooling.proximal_cooled_length_sd_mm,
        "calibration": {"data": cooling.source},
    }


@app.command("probes")
def probes_command(
    format: str = typer.Option("table", "--format", help="json or table."),
    probe_file: Path = typer.Option(
        None, "--probe-file", help="YAML file of extra probe types to list with the library."
    ),
) -> None:
    """List the cryoprobe library: geometry and the family's calibrated cooling."""
    _check_format(format)
    if probe_file is not None:
        load_probe_file(probe_file)
    rows = [_probe_document(p) for p in PROBES.values()]
    if format == "json":
        typer.echo(json.dumps({"schema_version": 1, "probes": rows}, indent=2, ensure_ascii=False))
        return
    table = Table(
        "id",
        "diameter (mm)",
        "active length (mm)",
        "cooled shaft behind it (mm)",
        "working length (mm)",
        "cryogen (°C)",
        "h (W/m²·K)",
        "source",
    )
    for row in rows:
        table.add_row(
            row["id"],
            f"{row['diameter_mm']:g}",
            f"{row['active_length_mm']:g}",
            f"{row['proximal_cooled_length_mm']:.1f} ± {row['proximal_cooled_length_sd_mm']:.1f}",
            f"{row['working_length_mm']:g}",
            f"{row['cryogen_temperature_c']:g}",
            f"{row['heat_transfer_w_m2k']:.0f} ± {row['heat_transfer_sd_w_m2k']:.0f}",
            row["source"],
        )
    Console().print(table)


@app.command("isotherms")
def isotherms_command(
    probe: str = typer.Option(..., "--probe", help="Probe id (see `cryoplan probes`)."),
    probe_file: Path = typer.Option(
        None, "--probe-file", help="YAML file of extra probe types (see `cryoplan probes`)."
    ),
    count: int = typer.Option(1, "--count", help="Number of parallel probes."),
    spacing: float = typer.Option(15.0, "--spacing", help="Distance between neighbouring probes (mm)."),
    layout: str = typer.Option("line", "--layout", help="line, triangle or square."),
    medium: str = typer.Option("gel", "--medium", help="gel, liver, tumour or a medium FILE.yaml."),
    initial_temp: float = typer.Option(
        None, "--initial-temp", help="Initial temperature (°C); default: the medium's steady temperature."
    ),
    probe_surface_temp: float = typer.Option(
        None,
        "--probe-surface-temp",
        help="Hold this surface temperature (°C) on each probe's physical surface instead of its calibrated cooling.",
    ),
    protocol: str = typer.Option(
        "freeze:10,passive_thaw:5,freeze:10", "--protocol", help='Phases, e.g. "freeze:10,passive_thaw:5,freeze:10".'
    ),
    isotherms: str = typer.Option("0,-20,-40", "--isotherms", help="Isotherm temperatures (°C), comma-separated."),
    grid_mm: float = typer.Option(1.0, "--grid-mm", help="Grid spacing (mm)."),
    format: str = typer.Option("table", "--format", help="json or table."),
) -> None:
    """Size of each isotherm at the end of a protocol, for probes in a homogeneous medium."""
    _check_format(format)
    if probe_file is not None:
        load_probe_file(probe_file)
    placements = probe_layout(probe, count, spacing, layout)
    tissue = load_medium(medium)
    phases = parse_protocol(protocol, field="--protocol")
    temperatures = _parse_temperatures(isotherms)
    if initial_temp is not None and not math.isfinite(initial_temp):
        raise InputError("--initial-temp", "a finite temperature in °C", initial_temp)
    if probe_surface_temp is not None and not (math.isfinite(probe_surface_temp) and -273.15 < probe_surface_temp):
        raise InputError("--probe-surface-temp", "a finite temperature above −273.15 °C", probe_surface_temp)
    with progress_bar("simulating") as progress:
        document = isotherm_chart(
            placements,
            tissue,
            phases,
            isotherms_c=temperatures,
            grid_mm=grid_mm,
            initial_temp_c=initial_temp,
            probe_surface_temp_c=probe_surface_temp,
            progress=progress,
        )
    if format == "json":
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table(
        "isotherm (°C)",
        "length (mm)",
        "width (mm)",
        "depth (mm)",
        "volume (ml)",
        title=f"{count} × {probe}, {phases}, in {tissue.name}, {grid_mm:g} mm grid",
    )
    for row in document["isotherms"]:
        table.add_row(
            f"{row['temperature_c']:g}",
            f"{row['length_mm']:.1f}",
            f"{row['width_mm']:.1f}",
            f"{row['depth_mm']:.1f}",
            f"{row['volume_ml']:.2f}",
        )
    Console().print(table)


@app.command("simulate")
def simulate_command(
    spec: Path = typer.Argument(..., help="Simulation spec (YAML): label volume, tissues, vessels, probes, protocol."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
) -> None:
    """Simulate a protocol on a label volume; write the minimum-temperature map, isotherm masks, summary and figures."""

    loaded = load_spec(spec)
    with progress_bar("simulating") as progress:
        summary = run_spec(loaded, out, progress=progress)
    typer.echo(json.dumps(summary, indent=2))


@app.command("validate")
def validate_command(
    format: str = typer.Option("text", "--format", help="json or text."),
    out: Path = typer.Option(None, "-o", "--out", help="Folder for validation.json and the figures."),
    grid_mm: float = typer.Option(CALIBRATION_GRID_MM, "--grid-mm", help="Grid spacing (mm) of the simulations."),
) -> None:
    """Simulate every published measurement the probe model is calibrated on: measured vs simulated, the
    error per category, and the leave-one-source-out error."""
    if format not in ("json", "text"):
        raise InputError("--format", "one of json, text", format)
    with progress_display(
        TextColumn("validating"), TextColumn("{task.completed:.0f} simulations"), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("validating", total=None)
        document, profiles = validate(grid_mm, progress=lambda _: bar.advance(task))
    if out is not None:
        with atomic_directory(out) as folder:
            write_json(folder / "validation.json", document)
            validation_figure(document).savefig(folder / "simulated_vs_measured.png", dpi=120)
            isotherm_profile_figure(profiles, document).savefig(folder / "isotherm_profiles.png", dpi=120)
    if format == "json":
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    typer.echo(validation_text(document))


def validation_text(document: dict[str, Any]) -> str:
    """The validation document as a Markdown table and summary (what docs/validation.md shows)."""
    lines = [
        "| row | source | category | measured | isotherm (°C) | measured (mm) | simulated (mm) | residual (mm) "
        "| source left out: simulated (mm) | residual (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        bound = "< " if row["bound"] == "upper" else ""
        lines.append(
            f"| {row['id']} | {row['source']} | {row['category']} | {row['quantity']} | {row['isotherm_c']:g} "
            f"| {bound}{row['measured_mm']:g} ± {row['sd_mm']:g} | {row['simulated_mm']:.1f} "
            f"| {row['residual_mm']:+.1f} "
            f"| {row['loso_simulated_mm']:.1f} | {row['loso_residual_mm']:+.1f} |"
        )
    lines += [
        "",
        "| category | rows | fit: mean abs error (mm) | fit: max (mm) | left out: mean (mm) | left out: max (mm) |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for category, fit in document["fit_error"].items():
        loso = document["leave_one_source_out_error"][category]
        lines.append(
            f"| {category} | {fit['rows']} | {fit['mean_abs_error_mm']:.1f} | {fit['max_abs_error_mm']:.1f} "
            f"| {loso['mean_abs_error_mm']:.1f} | {loso['max_abs_error_mm']:.1f} |"
        )
    lines += ["", "| parameter | value | sd | unit | range |", "|---|---|---|---|---|"]
    for name, entry in document["parameters"].items():
        flag = " (at bound)" if entry["at_bound"] else ""
        lines.append(
            f"| {name} | {entry['value']:.4g}{flag} | {entry['sd']:.3g} | {entry['unit']} "
            f"| {entry['range'][0]:g} … {entry['range'][1]:g} |"
        )
    target = document["target"]
    verdicts = [
        f"{name} {'met' if missed == 0 else f'missed by {missed:.1f} mm'}"
        for name, missed in (("mean", target["mean_missed_by_mm"]), ("maximum", target["max_missed_by_mm"]))
    ]
    over = ", ".join(f"{r['id']} ({r['abs_error_mm']:.1f} mm)" for r in target["rows_over_max"])
    lines += [
        "",
        f"Leave-one-source-out error on the {' and '.join(target['categories'])} rows ({target['rows']}): "
        f"{target['mean_abs_error_mm']:.1f} mm mean, {target['max_abs_error_mm']:.1f} mm maximum; target "
        f"≤ {target['target_mean_mm']:g} mm mean, ≤ {target['target_max_mm']:g} mm maximum: {', '.join(verdicts)}"
        + (f"; over the maximum: {over}." if over else "."),
        "Rows excluded: "
        + ("; ".join(f"{key} ({why})" for key, why in document["excluded_rows"].items()) or "none")
        + ".",
        f"{document['simulations']} simulations on a {document['grid_mm']:g} mm grid; χ² = {document['chi2']:.1f}.",
    ]
    return "\n".join(lines)
