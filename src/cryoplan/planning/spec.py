"""`cryoplan simulate SPEC.yaml`: a run on a label volume, described by a YAML spec, and its outputs.

Spec keys (paths relative to the spec file)::

    labels: labels.nii.gz            # label volume (NIfTI, NRRD or DICOM-SEG; integer labels)
    tissues: {0: liver, 1: tumour, 2: my_medium.yaml}   # every label present near the probes
    vessels: [{label: 3, diameter_mm: 8.0}]              # labels that are vessel lumens
    probes:
      - {probe: 17g-sphere, tip_mm: [x, y, z], direction: [dx, dy, dz], flow_fraction: 1.0}
    protocol: "freeze:10,passive_thaw:5,freeze:10"
    isotherms_c: [0, -20, -40]
    record_points: {centre: [x, y, z]}
    grid_mm: 1.0                     # simulation grid (labels resampled nearest-neighbour)
    margin_mm: 40.0                  # grid extends this far beyond the probes' active zones
    initial_temp_c: null             # default: each tissue's perfused steady temperature

Coordinates are LPS millimetres; files are read and written through `cryoplan.imaging.io`, which converts
NIfTI's RAS world at the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cryoplan.errors import InputError
from cryoplan.imaging.io import read_labels, write_nifti
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_directory, write_json
from cryoplan.thermal.figures import history_figure, temperature_map_figure
from cryoplan.thermal.grid import Grid
from cryoplan.thermal.probes import ProbePlacement, get_probe
from cryoplan.thermal.protocol import DEFAULT_PROTOCOL, Protocol, parse_protocol
from cryoplan.thermal.solver import simulate
from cryoplan.thermal.tissue import Tissue, load_medium
from cryoplan.thermal.vessel import Vessel

_SPEC_KEYS = (
    "labels",
    "tissues",
    "vessels",
    "probes",
    "protocol",
    "isotherms_c",
    "record_points",
    "grid_mm",
    "margin_mm",
    "initial_temp_c",
)


@dataclass
class SimulationSpec:
    """A parsed, validated spec: the label volume (LPS), and the simulation's inputs."""

    labels: Volume
    tissues: dict[int, Tissue]
    vessels: dict[int, float]
    probes: list[ProbePlacement]
    protocol: Protocol = DEFAULT_PROTOCOL
    isotherms_c: list[float] = field(default_factory=lambda: [0.0, -20.0, -40.0])
    record_points: dict[str, np.ndarray] = field(default_factory=dict)
    grid_mm: float = 1.0
    margin_mm: float = 40.0
    initial_temp_c: float | None = None


def read_label_volume(path: Path, field_name: str = "labels") -> Volume:
    """Integer labels read through `cryoplan.imaging.io` (NIfTI, NRRD or DICOM-SEG), errors under `field_name`."""
    try:
        return read_labels(path)
    except InputError as error:
        raise InputError(field_name, f"{error.expected} ({Path(path).name})", error.got) from None


def _point(value: Any, field_name: str) -> np.ndarray:
    try:
        point = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(field_name, "three numbers (LPS mm)", value) from None
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(field_name, "three finite numbers (LPS mm)", value)
    return point


def _number(document: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = document.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and low <= value <= high)
    ):
        raise InputError(f"spec.{key}", f"a number between {low:g} and {high:g}", value)
    return float(value)


def load_spec(path: Path) -> SimulationSpec:
    """Parse and validate a spec file; every problem is an `InputError` naming the key."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("SPEC", "an existing YAML file", str(path)) from None
    except yaml.YAMLError as error:
        raise InputError("SPEC", "valid YAML", str(error).splitlines()[0]) from None
    if not isinstance(document, dict):
        raise InputError("SPEC", "a mapping of simulation keys", type(document).__name__)
    for key in document:
        if key not in _SPEC_KEYS:
            raise InputError(f"spec.{key}", f"one of the keys {', '.join(_SPEC_KEYS)}", key)
    if "labels" not in document:
        raise InputError("spec.labels", "a NIfTI label volume path")
    labels = read_label_volume(path.parent / str(document["labels"]), field_name="spec.labels")
    raw_tissues = document.get("tissues") or {}
    if not isinstance(raw_tissues, dict) or not raw_tissues:
        raise InputError("spec.tissues", "a mapping label → medium name or file")
    tissues = {}
    for key, value in raw_tissues.items():
        if isinstance(key, bool) or not isinstance(key, int):
            raise InputError(f"spec.tissues.{key}", "an integer label", key)
        source = (
            value
            if isinstance(value, dict)
            else (value if str(value) in ("liver", "tumour", "gel", "blood") else path.parent / str(value))
        )
        try:
            tissues[key] = load_medium(source)
        except InputError as error:
            raise InputError(f"spec.tissues.{key}.{error.field}", error.expected, error.got) from None
    vessels = {}
    for n, entry in enumerate(document.get("vessels") or []):
        if not isinstance(entry, dict) or set(entry) != {"label", "diameter_mm"}:
            raise InputError(f"spec.vessels[{n}]", "a mapping with label and diameter_mm", entry)
        diameter = entry["diameter_mm"]
        if not isinstance(diameter, (int, float)) or not (math.isfinite(diameter) and diameter > 0):
            raise InputError(f"spec.vessels[{n}].diameter_mm", "a positive diameter in mm", diameter)
        vessels[int(entry["label"])] = float(diameter)
    raw_probes = document.get("probes")
    if not isinstance(raw_probes, list) or not raw_probes:
        raise InputError("spec.probes", "a list of probes (probe, tip_mm, direction)")
    probes = []
    for n, entry in enumerate(raw_probes):
        if not isinstance(entry, dict):
            raise InputError(f"spec.probes[{n}]", "a mapping with probe, tip_mm, direction", entry)
        unknown = set(entry) - {"probe", "tip_mm", "direction", "flow_fraction"}
        if unknown:
            raise InputError(f"spec.probes[{n}].{sorted(unknown)[0]}", "one of probe, tip_mm, direction, flow_fraction")
        get_probe(str(entry.get("probe")), field=f"spec.probes[{n}].probe")
        flow = entry.get("flow_fraction", 1.0)
        if not isinstance(flow, (int, float)) or not 0 <= flow <= 1:
            raise InputError(f"spec.probes[{n}].flow_fraction", "a number in [0, 1]", flow)
        tip = _point(entry.get("tip_mm"), f"spec.probes[{n}].tip_mm")
        direction = _point(entry.get("direction"), f"spec.probes[{n}].direction")
        if np.linalg.norm(direction) == 0:
            raise InputError(f"spec.probes[{n}].direction", "a non-zero vector", entry.get("direction"))
        probes.append(ProbePlacement(str(entry["probe"]), tip, direction, float(flow)))
    protocol = parse_protocol(str(document.get("protocol", str(DEFAULT_PROTOCOL))), field="spec.protocol")
    isotherms = document.get("isotherms_c", [0.0, -20.0, -40.0])
    if (
        not isinstance(isotherms, list)
        or not isotherms
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in isotherms)
    ):
        raise InputError("spec.isotherms_c", "a list of temperatures in °C", isotherms)
    points = {
        str(name): _point(value, f"spec.record_points.{name}")
        for name, value in (document.get("record_points") or {}).items()
    }
    initial = document.get("initial_temp_c")
    if initial is not None and (not isinstance(initial, (int, float)) or not math.isfinite(initial)):
        raise InputError("spec.initial_temp_c", "a temperature in °C or null", initial)
    return SimulationSpec(
        labels=labels,
        tissues=tissues,
        vessels=vessels,
        probes=probes,
        protocol=protocol,
        isotherms_c=[float(v) for v in isotherms],
        record_points=points,
        grid_mm=_number(document, "grid_mm", 1.0, 0.2, 5.0),
        margin_mm=_number(document, "margin_mm", 40.0, 5.0, 200.0),
        initial_temp_c=None if initial is None else float(initial),
    )


def run_spec(spec: SimulationSpec, out: Path, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Simulate the spec and write ``min_temperature.nii.gz``, one mask per isotherm, ``summary.json`` and
    figures into `out` (atomically). Returns the summary."""
    points = [p for placement in spec.probes for p in (*placement.active_segment_mm(), placement.tip_mm)]
    grid = Grid.around(points, spec.margin_mm, spec.grid_mm)
    # −1 marks simulation voxels outside the label volume
    labels = (
        spec.labels.with_array(spec.labels.array.astype(np.int64)).resampled(grid.shape, grid.affine, cval=-1).array
    )
    if np.any(labels < 0):
        raise InputError(
            "spec.probes",
            f"probes at least margin_mm = {spec.margin_mm:g} mm inside the label volume "
            "(the simulation grid reaches outside it)",
        )
    vessels = [Vessel(labels == label, diameter) for label, diameter in spec.vessels.items()]
    lumen = np.zeros(grid.shape, dtype=bool)
    for vessel in vessels:
        lumen |= vessel.mask
    tissue_labels = labels.copy()
    if lumen.any():
        # Lumen voxels take any tissue's label: the vessel's blood properties replace it.
        tissue_labels[lumen] = next(iter(spec.tissues))
    result = simulate(
        grid,
        spec.probes,
        spec.protocol,
        tissue_labels=tissue_labels,
        tissues=spec.tissues,
        vessels=vessels,
        record_points=spec.record_points,
        isotherms_c=spec.isotherms_c,
        initial_temp_c=spec.initial_temp_c,
        progress=progress,
    )
    summary = {
        "schema_version": 1,
        "grid": {
            "origin_mm": grid.origin_mm.round(3).tolist(),
            "spacing_mm": grid.spacing_mm,
            "shape": list(grid.shape),
        },
        "protocol": str(spec.protocol),
        "probes": [
            {
                "probe": p.probe_id,
                "tip_mm": p.tip_mm.round(3).tolist(),
                "direction": p.direction.round(6).tolist(),
                "flow_fraction": p.flow_fraction,
            }
            for p in spec.probes
        ],
        "isotherms": [
            {"temperature_c": t, "volume_ml": round(result.isotherm_volume_ml(t), 3), "mask_file": _mask_name(t)}
            for t in spec.isotherms_c
        ],
        "record_points": {
            name: {"min_temperature_c": round(float(np.min(h[1])), 2), "final_temperature_c": round(float(h[1][-1]), 2)}
            for name, h in result.histories.items()
        },
        "energy_j": {key: round(value, 3) for key, value in result.energy_j.items()},
        "elapsed_s": round(result.elapsed_s, 3),
    }
    with atomic_directory(out) as folder:
        write_nifti(Volume(result.min_temperature_c.astype(np.float32), grid.affine), folder / "min_temperature.nii.gz")
        for t in spec.isotherms_c:
            write_nifti(Volume(result.isotherm_mask(t).astype(np.uint8), grid.affine), folder / _mask_name(t))
        temperature_map_figure(result, spec.probes, spec.isotherms_c).savefig(folder / "temperature_map.png", dpi=120)
        if result.histories:
            history_figure(result, spec.isotherms_c).savefig(folder / "temperature_history.png", dpi=120)
        write_json(folder / "summary.json", summary)
    return summary


def _mask_name(temperature_c: float) -> str:
    text = f"{abs(temperature_c):g}".replace(".", "p")
    return f"isotherm_{'minus' if temperature_c < 0 else ''}{text}c.nii.gz"
