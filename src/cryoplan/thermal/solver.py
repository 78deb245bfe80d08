"""`simulate`: the Pennes equation with phase change on a uniform grid, probes as sub-grid line sinks.

Scheme: the enthalpy method on the 7-point stencil, advanced by Runge–Kutta–Legendre super steps
(`cryoplan.thermal.kernels`) of up to `SUPER_STEP_S`, each stable by construction (`step_schedule`). The
grid's outer layer stays at the initial temperature (a far-field bath); vessel lumens are held at blood
temperature behind a convective wall.

Probe sub-grid model. A needle (radius r_p, 0.7–1.9 mm) is thinner than a few voxels, so it is represented
as a line sink spread over the voxels within ε of its active segment by the raised-cosine kernel
w(d) = A (1 + cos(π d/ε)), normalised per unit length. For a line sink spread this way, the w-weighted mean
temperature T̄ of the continuum field equals the field of a plain line sink at the radius r_e = c ε
(c = `kernel_equivalent_radius_ratio()` ≈ 0.524). Between T̄ and the cryogen inside the probe lie two
resistances in series, per unit length: the frozen tissue from r_e in to the surface r_p, ln(r_e/r_p)/(2π k_s),
and the film from the surface to the cryogen, 1/(2π r_p h f) (`cryoplan.thermal.probes`). The probe draws
q = (T̄ − T_c) / (their sum) per unit length (`probe_coupling_w_mk`), and outside ε the field is the field of
that probe, whatever the grid and the direction. ε = max(2.5 dx, 1.25 r_p / c) keeps r_e ≥ 1.25 r_p. This is
the well-index idea of reservoir simulation (D. W. Peaceman, SPE J 1978;18:183) with a smooth kernel in
place of the single cell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from cryoplan.errors import InputError
from cryoplan.thermal import kernels
from cryoplan.thermal.grid import Grid
from cryoplan.thermal.probes import ProbePlacement, get_probe, probes_too_close
from cryoplan.thermal.protocol import ACTIVE_THAW_SURFACE_C, Phase, Protocol
from cryoplan.thermal.result import ThermalResult
from cryoplan.thermal.tissue import TISSUES, Tissue
from cryoplan.thermal.vessel import BLOOD_TEMPERATURE_C, Vessel

STABILITY_FRACTION = 0.95
SUPER_STEP_S = 5.0
"""Default length of the longest super step (s), see `step_schedule`: the longest that keeps the validations
within their tolerances. At 7.5 s, runs compared pairwise on a 2 mm grid (a thicker, longer probe never
makes less ice) differed by more than 0.1 °C; at 10 s the sampled −20 °C volume of one spherical probe on
a 1.5 mm grid was 4.3 % larger than with explicit steps."""
PREVIEW_SUPER_STEP_S = 20.0
"""Longest super step of a preview (`simulate(preview=True)`). At 30 s the −20 °C volume of one 17G spherical
probe, freeze 4 – thaw 2 – freeze 4 min on a 2 mm grid, was 5.9 % (16 voxels) above the default steps'; at 20 s
it matched (`benchmarks/time_steps.py --preview`)."""
PREVIEW_SPACING_MM = 2.0
"""The finest grid the preview's steps were checked on (against the default steps, on 2 mm grids); on finer
grids its 20 s steps span more forward-Euler limits than were checked."""
RAMP_GROWTH = 1.25
"""Growth of successive steps in the ramp that opens each stretch (`step_schedule`). Previews keep it: ramps
doubling to their 20 s steps left the −20 °C volume of one 17G spherical probe, freeze 4 – thaw 2 – freeze 4 min
on a 2 mm grid, 17.6 % (48 voxels) above the default steps'."""
SAMPLE_INTERVAL_S = 1.0
CHUNK_S = 5.0
SERIAL_BELOW_VOXELS = 500_000
"""Boxes smaller than this run on one thread: a barrier per step would cost more than it saves."""
ACTIVE_BOX_TOLERANCE_C = 0.2
"""Voxels whose temperature moved by more than this are disturbed; only a box around them is updated. In
perfused tissue a disturbance decays over a few millimetres (√(k/W), 3.5 mm in liver), so each tenfold of
tolerance brings the box's faces about 8 mm closer. It lies above the largest difference between the perfused
steady states of the library's tissues (0.086 °C: liver's metabolic heat), so that a vessel or a tissue
boundary relaxing to the steady state of both sides, not a probe's work, opens no box along its whole length:
problem (b) of `benchmarks/thermal.py` (an 8 mm vessel across the grid) made 2.81, 2.24 and 1.58 × 10⁹ voxel
updates at 0.03, 0.1 and 0.2 °C with the same 0/−20/−40 °C volumes (to 1 µl) and enthalpy change (to 0.01 %)."""


@lru_cache(maxsize=1)
def kernel_equivalent_radius_ratio() -> float:
    """c = r_e/ε of the raised-cosine kernel: ln r_e = ∫ w ψ dA with ψ the potential of the spread sink.

    Computed by quadrature on a fine radial grid (ψ' = M(r)/r, M the enclosed kernel weight, ψ = ln r
    outside ε = 1).
    """
    r = np.linspace(0.0, 1.0, 200001)[1:]
    w = (1.0 + np.cos(np.pi * r)) * 2.0 * np.pi * r
    dr = r[1] - r[0]
    w /= w.sum() * dr
    enclosed = np.cumsum(w) * dr
    integrand = enclosed / r
    psi = -(np.cumsum(integrand[::-1])[::-1] * dr)  # ψ(r) = −∫_r^1 M/s ds, ψ(1) = ln 1 = 0
    return float(np.exp(np.sum(w * psi) * dr))


def kernel_radius_mm(probe_radius_mm: float, spacing_mm: float) -> float:
    """ε of the probe kernel: at least 2.5 voxels, and wide enough that r_e ≥ 1.25 r_p."""
    return max(2.5 * spacing_mm, 1.25 * probe_radius_mm / kernel_equivalent_radius_ratio())


def probe_coupling_w_mk(tissue_w_mk: float, film_w_mk: float) -> float:
    """Conductance per metre from the kernel's mean temperature to the cryogen: the frozen tissue between
    r_e and r_p (`ProbeSinks.line_conductance`) in series with the film to the cryogen (2π r_p h f)."""
    if film_w_mk <= 0.0:
        return 0.0
    return 1.0 / (1.0 / tissue_w_mk + 1.0 / film_w_mk)


def _segment_distance_mm(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    distance: np.ndarray = np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)
    return distance


def _section_axis(grid: Grid) -> int | None:
    """The axis along which a cross-section grid is one voxel thick (None for a 3-D grid)."""
    thin = [a for a in range(3) if grid.shape[a] == 1]
    return thin[0] if len(thin) == 1 else None


PROBE_PIECE_MM = 5.0
"""Length of the pieces a probe's active zone is cut into, each drawing heat by its own mean temperature."""


class ProbeSinks:
    """Flattened voxel lists and weights of every probe's kernel (see the module docstring), cut along the
    active zone into pieces of about `PROBE_PIECE_MM`: the cryogen's temperature is the same along the zone,
    so a piece in warmer tissue (the ends, a heat-loaded side) draws more heat than one in colder tissue.
    Arrays are per piece; `owner` names each piece's probe. A cross-section keeps one piece per probe.
    """

    def __init__(
        self,
        grid: Grid,
        placements: Sequence[ProbePlacement],
        radii_mm: Sequence[float],
        fixed: np.ndarray,
        frozen_conductivity: Sequence[float],
    ):
        dx = grid.spacing_mm
        ptr, flat, weight, length, conductance, owner = [0], [], [], [], [], []
        c = kernel_equivalent_radius_ratio()
        for n, placement in enumerate(placements):
            eps = kernel_radius_mm(radii_mm[n], dx)
            a, b = placement.active_segment_mm()
            lo = np.floor(grid.index_of(np.minimum(a, b) - eps)).astype(int).clip(0, np.asarray(grid.shape) - 1)
            hi = np.ceil(grid.index_of(np.maximum(a, b) + eps)).astype(int).clip(0, np.asarray(grid.shape) - 1) + 1
            index = np.stack(np.meshgrid(*(np.arange(lo[d], hi[d]) for d in range(3)), indexing="ij"), -1).reshape(
                -1, 3
            )
            centres = grid.origin_mm + index * dx
            thin = _section_axis(grid)
            if thin is not None:  # a cross-section: the probe is an infinite line across it
                distance = np.linalg.norm(np.delete(centres - a, thin, axis=1), axis=1)
            else:
                distance = _segment_distance_mm(centres, a, b)
            keep = distance < eps
            index, distance = index[keep], distance[keep]
            flat_index = np.ravel_multi_index(index.T, grid.shape)
            keep = ~fixed.reshape(-1)[flat_index]
            flat_index, distance = flat_index[keep], distance[keep]
            amplitude = 1.0 / (2.0 * np.pi * (0.5 - 2.0 / np.pi**2)) / (eps * 1e-3) ** 2  # ∫ w 2πr dr = 1
            w = amplitude * (1.0 + np.cos(np.pi * distance / eps)) * (dx * 1e-3) ** 3  # metres of line
            r_e, r_p = c * eps * 1e-3, radii_mm[n] * 1e-3
            pieces = 1 if thin is not None else max(1, round(float(np.linalg.norm(b - a)) / PROBE_PIECE_MM))
            centres = grid.origin_mm + np.asarray(np.unravel_index(flat_index, grid.shape)).T * dx
            along = np.clip(((centres - a) @ (b - a)) / float((b - a) @ (b - a)), 0.0, 1.0)
            piece = np.minimum((along * pieces).astype(np.int64), pieces - 1)
            for k in range(pieces):
                mine = piece == k
                flat.append(flat_index[mine])
                weight.append(w[mine])
                ptr.append(ptr[-1] + int(mine.sum()))
                length.append(float(w[mine].sum()))
                conductance.append(2.0 * np.pi * frozen_conductivity[n] / math.log(r_e / r_p))
                owner.append(n)
        self.ptr = np.asarray(ptr, dtype=np.int64)
        self.flat_index = np.concatenate(flat).astype(np.int64) if flat else np.zeros(0, np.int64)
        self.weight = np.concatenate(weight) if weight else np.zeros(0)
        self.effective_length = np.asarray(length, dtype=np.float64)
        self.line_conductance = np.asarray(conductance, dtype=np.float64)  # W/(m·K) per metre of active zone
        self.owner = np.asarray(owner, dtype=np.int64)


def _check_placements(grid: Grid, probes: Sequence[ProbePlacement]) -> None:
    """Probe ids known, kernels inside the grid, no two needles overlapping.

    A grid one voxel thick along one axis is a cross-section: its probes must run along that axis and
    count as infinite lines (only their position in the section is checked).
    """
    thin = _section_axis(grid)
    for n, placement in enumerate(probes):
        if not isinstance(placement, ProbePlacement):
            raise InputError(f"probes[{n}]", "a ProbePlacement", type(placement).__name__)
        probe = get_probe(placement.probe_id, field=f"probes[{n}].probe_id")
        a, b = placement.active_segment_mm()
        margin = kernel_radius_mm(probe.radius_mm, grid.spacing_mm) + grid.spacing_mm
        if thin is not None and abs(abs(placement.direction[thin]) - 1.0) > 1e-9:
            raise InputError(
                f"probes[{n}].direction",
                f"along grid axis {thin}, across the one-voxel-thick section",
                placement.direction.tolist(),
            )
        for name, point in (("tip_mm", placement.tip_mm), ("active_zone", a), ("active_zone", b)):
            axes = [a for a in range(3) if a != thin]
            index = grid.index_of(point)[axes]
            room_mm = np.minimum(index, (np.asarray(grid.shape)[axes] - 1) - index) * grid.spacing_mm
            if np.any(room_mm < margin):
                raise InputError(
                    f"probes[{n}].{name}",
                    f"inside the grid with {margin:.1f} mm to spare "
                    f"(grid spans {grid.origin_mm.round(1).tolist()} to {grid.extent_mm.round(1).tolist()} mm)",
                    np.round(point, 2).tolist(),
                )
    close = probes_too_close(probes)
    if close is not None:
        n, m, gap = close
        radii = probes[n].probe.radius_mm + probes[m].probe.radius_mm
        raise InputError(
            f"probes[{n}]", f"at least {radii:.2f} mm (the probes' radii) from probes[{m}]", f"{gap:.2f} mm"
        )


def _phase_segments(
    n: int,
    phase: Phase,
    grid: Grid,
    probes: Sequence[ProbePlacement],
    radii: Sequence[float],
    fixed: np.ndarray,
    frozen_k: Sequence[float],
    sinks: ProbeSinks,
) -> Iterator[tuple[float, ProbeSinks]]:
    """(seconds, probe sinks) of the stretches a phase is run in: the whole phase with the probes where they
    are; a tract freeze in one stretch per voxel of withdrawal, each with the probes drawn back along their
    shafts to the middle of that stretch."""
    if phase.kind != "tract_freeze":
        yield phase.seconds, sinks
        return
    pieces = max(1, math.ceil(phase.withdrawal_mm / grid.spacing_mm))
    withdrawn = [
        ProbePlacement(p.probe_id, p.tip_mm - phase.withdrawal_mm * p.direction, p.direction, p.flow_fraction)
        for p in probes
    ]
    try:
        _check_placements(grid, withdrawn)
    except InputError as error:
        raise InputError(
            f"protocol[{n}].withdrawal_mm",
            f"a withdrawal that keeps the probes inside the grid ({error.field}: expected {error.expected})",
            phase.withdrawal_mm,
        ) from None
    for piece in range(pieces):
        back_mm = (piece + 0.5) / pieces * phase.withdrawal_mm
        moved = [
            ProbePlacement(p.probe_id, p.tip_mm - back_mm * p.direction, p.direction, p.flow_fraction) for p in probes
        ]
        yield phase.seconds / pieces, ProbeSinks(grid, moved, radii, fixed, frozen_k)


def _labels_and_table(
    grid: Grid,
    tissue_labels: np.ndarray | None,
    tissues: Mapping[int, Tissue] | Tissue,
    vessels: Sequence[Vessel],
) -> tuple[np.ndarray, np.ndarray, list[Tissue], np.ndarray]:
    """Compact labels (uint8) and the property table rows: one per tissue, then one per vessel lumen."""
    if isinstance(tissues, Tissue):
        tissues = {0: tissues}
    if not isinstance(tissues, Mapping) or not tissues:
        raise InputError("tissues", "a Tissue or a non-empty mapping of label → Tissue", type(tissues).__name__)
    if tissue_labels is None:
        if len(tissues) != 1:
            raise InputError("tissue_labels", "a label volume when several tissues are given")
        raw = np.zeros(grid.shape, dtype=np.int64)
        raw_keys = list(tissues)
        raw[...] = raw_keys[0]
    else:
        raw = np.asarray(tissue_labels)
        if raw.shape != grid.shape:
            raise InputError("tissue_labels", f"an array of the grid's shape {grid.shape}", raw.shape)
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)):
                raise InputError("tissue_labels", "finite integer labels (found NaN or infinity)")
            if not np.all(raw == np.round(raw)):
                raise InputError("tissue_labels", "integer labels", "non-integer values")
        elif raw.dtype.kind not in "iub":
            raise InputError("tissue_labels", "integer labels", str(raw.dtype))
        raw = raw.astype(np.int64)
    keys = sorted(int(k) for k in tissues)
    present = np.unique(raw)
    missing = sorted(set(present.tolist()) - set(keys))
    if missing:
        raise InputError("tissues", f"a tissue for every label in the volume (labels {missing} have none)")
    if len(keys) + len(vessels) > 255:
        raise InputError("tissues", "at most 255 tissues and vessels together", len(keys) + len(vessels))
    lookup = np.zeros(max(keys) - min(keys) + 1, dtype=np.uint8)
    for n, key in enumerate(keys):
        lookup[key - min(keys)] = n
    labels = lookup[raw - min(keys)]
    rows = [tissues[k] for k in keys]
    table = [_props_row(t) for t in rows]
    fixed_lumen = np.zeros(grid.shape, dtype=bool)
    blood = TISSUES["blood"]
    for v, vessel in enumerate(vessels):
        if not isinstance(vessel, Vessel) or vessel.mask.shape != grid.shape:
            raise InputError(f"vessels[{v}].mask", f"a boolean mask of the grid's shape {grid.shape}")
        row = _props_row(blood)
        row[kernels.FIXED] = 1.0
        row[kernels.WALL_H] = vessel.wall_heat_transfer_w_m2k
        table.append(row)
        labels[vessel.mask] = len(table) - 1
        fixed_lumen |= vessel.mask
    return labels, np.asarray(table, dtype=np.float64), rows, fixed_lumen


def _props_row(t: Tissue) -> list[float]:
    row = [0.0] * kernels.N_PROPS
    row[kernels.C_FROZEN] = t.heat_capacity_frozen_j_m3k
    row[kernels.C_UNFROZEN] = t.heat_capacity_unfrozen_j_m3k
    row[kernels.K_FROZEN] = t.conductivity_frozen_w_mk
    row[kernels.K_UNFROZEN] = t.conductivity_unfrozen_w_mk
    row[kernels.T_SOLIDUS] = t.solidus_c
    row[kernels.T_LIQUIDUS] = t.liquidus_c
    row[kernels.H_LIQUIDUS] = t.liquidus_enthalpy_j_m3
    row[kernels.PERFUSION_W] = t.perfusion_w_m3k
    row[kernels.ARTERIAL_T] = t.arterial_temperature_c
    row[kernels.METABOLIC_Q] = t.metabolic_heat_w_m3
    return row


def stable_time_step_s(table: np.ndarray, spacing_mm: float, probe_rate_1_s: float = 0.0) -> float:
    """95 % of the forward-Euler limit 2/λ_max, λ_max = 12 α_max/dx² + max W/C + the fastest probe coupling
    rate (`kernels.probe_rates`): the sum bounds the spectrum of the linearised operator (Gershgorin)."""
    dx = spacing_mm * 1e-3
    free = table[table[:, kernels.FIXED] == 0] if np.any(table[:, kernels.FIXED] == 0) else table
    alpha = float(
        max(
            np.max(free[:, kernels.K_FROZEN] / free[:, kernels.C_FROZEN]),
            np.max(free[:, kernels.K_UNFROZEN] / free[:, kernels.C_UNFROZEN]),
        )
    )
    perfusion = float(np.max(free[:, kernels.PERFUSION_W] / free[:, kernels.C_UNFROZEN]))
    return STABILITY_FRACTION * 2.0 / (12.0 * alpha / (dx * dx) + perfusion + probe_rate_1_s)


def step_schedule(seconds: float, forward_euler_s: float, target_s: float | None) -> list[tuple[float, int, int]]:
    """How a stretch of `seconds` with the same probe settings is cut: [(τ, RKL1 stages, number of steps), …].

    It opens with a ramp, τ growing by `RAMP_GROWTH` from the forward-Euler limit: a probe switched on or off
    excites fast modes that the super steps damp but do not follow. Stepping straight over that transient
    left the sampled minimum temperature near the probe tens of degrees too cold; doubling steps left points
    7–10 mm from a restarted probe up to 1.7 °C colder than explicit steps, steps growing by a quarter
    within 1 °C (tests/validation/test_time_steps.py). The rest is cut into equal steps no longer than the
    target (`SUPER_STEP_S` by default), each with the fewest stages s such that (s² + s)/2 forward-Euler
    limits ≥ τ (Meyer et al. 2014)."""
    target = SUPER_STEP_S if target_s is None else target_s

    def stages(tau: float) -> int:
        return max(1, math.ceil((math.sqrt(1.0 + 8.0 * tau / forward_euler_s) - 1.0) / 2.0 - 1e-9))

    schedule = []
    left = seconds
    tau = forward_euler_s
    while tau < target and left > 1e-9:
        tau = min(tau, left)
        schedule.append((tau, stages(tau), 1))
        left -= tau
        tau *= RAMP_GROWTH
    if left > 1e-9:
        count = max(1, math.ceil(left / target - 1e-9))
        schedule.append((left / count, stages(left / count), count))
    return schedule


def _trilinear_temperature(H: np.ndarray, labels: np.ndarray, table: np.ndarray, index: np.ndarray) -> float:
    """Temperature at a fractional voxel index, interpolated trilinearly between the 8 voxels around it."""
    base = np.clip(np.floor(index).astype(int), 0, np.asarray(H.shape) - 2)
    f = np.clip(index - base, 0.0, 1.0)
    value = 0.0
    for corner in np.ndindex(2, 2, 2):
        voxel = tuple(base + corner)
        weight = float(np.prod(np.where(corner, f, 1.0 - f)))
        value += weight * kernels.temperature_of(float(H[voxel]), table, int(labels[voxel]))
    return value


@dataclass
class _Medium:
    """What the grid is made of: compact labels with their property and stencil tables, the runs of one label
    along k (`kernels.label_runs`), the interface between labels (`kernels.interface_faces`), the voxels
    held fixed, and the initial enthalpy (per label row of the tissues and vessels, and per voxel)."""

    labels: np.ndarray
    table: np.ndarray
    stencil: np.ndarray
    runs: kernels.Runs
    interface: kernels.Interface
    fixed: np.ndarray
    initial_h: np.ndarray
    H: np.ndarray


def _medium(
    grid: Grid,
    tissue_labels: np.ndarray | None,
    tissues: Mapping[int, Tissue] | Tissue,
    vessels: Sequence[Vessel],
    initial_temp_c: float | None,
    fixed_temperature: tuple[np.ndarray, float] | None,
) -> _Medium:
    """The grid's materials; each tissue starts at its perfused steady state T_a + Q_m/W, or at
    `initial_temp_c`; lumens at blood temperature; `fixed_temperature` voxels get rows of their own."""
    labels, table, tissue_rows, lumen = _labels_and_table(grid, tissue_labels, tissues, list(vessels))
    initial_c = np.empty(len(table))
    for n, tissue in enumerate(tissue_rows):
        initial_c[n] = tissue.steady_temperature_c if initial_temp_c is None else initial_temp_c
    initial_c[len(tissue_rows) :] = BLOOD_TEMPERATURE_C
    all_rows = tissue_rows + [TISSUES["blood"]] * (len(table) - len(tissue_rows))
    initial_h = np.asarray([float(t.enthalpy_j_m3(c)) for t, c in zip(all_rows, initial_c)])
    H = initial_h[labels].astype(np.float32)
    fixed = lumen.copy()
    if fixed_temperature is not None:
        mask, temperature = fixed_temperature
        mask = np.asarray(mask, dtype=bool)
        extra_rows: dict[int, int] = {}
        for lab in np.unique(labels[mask]):
            row = table[lab].copy()
            row[kernels.FIXED] = 1.0
            extra_rows[int(lab)] = len(table) + len(extra_rows)
            table = np.vstack([table, row])
            H[mask & (labels == lab)] = np.float32(all_rows[lab].enthalpy_j_m3(temperature))
        for lab, new in extra_rows.items():
            labels[mask & (labels == lab)] = new
        fixed |= mask
    return _Medium(
        labels=labels,
        table=table,
        stencil=kernels.stencil_table(table),
        runs=kernels.label_runs(labels),
        interface=kernels.interface_faces(labels, table),
        fixed=fixed,
        initial_h=initial_h,
        H=H,
    )


def _probe_sinks(
    grid: Grid, probes: Sequence[ProbePlacement], medium: _Medium
) -> tuple[ProbeSinks, list[float], list[float]]:
    """(sinks, kernel radii, frozen conductivity at each probe's active zone) of the probes where they are."""
    frozen_k = []
    for placement in probes:
        a, b = placement.active_segment_mm()
        middle = np.clip(np.round(grid.index_of(0.5 * (a + b))).astype(int), 0, np.asarray(grid.shape) - 1)
        frozen_k.append(medium.table[medium.labels[tuple(middle)], kernels.K_FROZEN])
    radii = [p.probe.radius_mm for p in probes]
    return ProbeSinks(grid, probes, radii, medium.fixed, frozen_k), radii, frozen_k


def _forward_euler_limit_s(grid: Grid, medium: _Medium, sinks: ProbeSinks) -> float:
    """`stable_time_step_s` with the fastest probe coupling (`kernels.probe_rates`)."""
    rates = kernels.probe_rates(
        medium.table,
        grid.spacing_mm**3 * 1e-9,
        sinks.ptr,
        sinks.flat_index,
        medium.labels,
        sinks.weight,
        sinks.effective_length,
        sinks.line_conductance,
    )
    return stable_time_step_s(medium.table, grid.spacing_mm, float(rates.max(initial=0.0)))


@dataclass
class _Fields:
    """The state advanced in time and what is sampled from it. Enthalpy: three buffers (the state and two RKL
    stages); Kirchhoff potential: two; ``current`` indexes the state's. Outside the active box every buffer
    holds the initial state."""

    Hs: np.ndarray
    phis: np.ndarray
    current: np.ndarray
    frozen: np.ndarray
    min_t: np.ndarray
    time_below: np.ndarray
    ledger: np.ndarray
    ledger_rows: np.ndarray
    final_t: np.ndarray

    @classmethod
    def initial(cls, grid: Grid, medium: _Medium, thresholds: np.ndarray) -> _Fields:
        fields = cls(
            Hs=np.empty((3, *grid.shape), dtype=np.float32),
            phis=np.empty((2, *grid.shape), dtype=np.float32),
            current=np.zeros(2, dtype=np.int64),
            frozen=np.zeros(grid.shape, dtype=np.uint8),
            min_t=np.full(grid.shape, np.inf, dtype=np.float32),
            time_below=np.zeros((len(thresholds), *grid.shape), dtype=np.float32),
            ledger=np.zeros(kernels.N_LEDGER),
            ledger_rows=np.zeros((grid.shape[0], kernels.N_LEDGER), dtype=np.float64),
            final_t=np.empty(grid.shape, dtype=np.float32),  # scratch until the end
        )
        fields.Hs[:] = medium.H
        kernels.state_fields(medium.H, medium.labels, medium.stencil, fields.final_t, fields.phis[0])
        fields.phis[1] = fields.phis[0]
        return fields

    @property
    def H(self) -> np.ndarray:
        state: np.ndarray = self.Hs[self.current[0]]
        return state

    def sample(self, medium: _Medium, thresholds: np.ndarray) -> None:
        """Mark frozen tissue and sample the minimum temperature over the whole grid."""
        everywhere = np.zeros(3, np.int64), np.asarray(self.H.shape, dtype=np.int64)
        kernels.end_pass(
            self.H, medium.stencil, self.frozen, medium.runs, *everywhere, True, 0.0, self.min_t, thresholds,
            self.time_below,
        )  # fmt: skip


class _ActiveBox:
    """The box [lo, hi) of voxels that are updated. The far field is at its steady state (or held), so only a
    box around the disturbance is. It starts around every voxel whose first step would change it and every
    probe (`seed`), and grows after each chunk of steps (at least `CHUNK_S`) to the voxels that moved by more
    than `ACTIVE_BOX_TOLERANCE_C`, plus the distance heat diffuses in that time through tissue still in its
    initial state, 3 √(2 α t) (`follow`).

    A bath: the outer layer of every axis at least 3 voxels long stays at its initial temperature (the box
    never reaches it). Thinner axes (cross-sections) and ``dirichlet_boundary=False``: the faces carry no heat.
    """

    def __init__(self, grid: Grid, medium: _Medium, dirichlet_boundary: bool):
        shape = np.asarray(grid.shape, dtype=np.int64)
        held = (shape >= 3) & dirichlet_boundary
        self.limit_lo = np.where(held, 1, 0).astype(np.int64)
        self.limit_hi = np.where(held, shape - 1, shape).astype(np.int64)
        self.lo, self.hi = self.limit_hi.copy(), self.limit_lo.copy()  # empty
        self.dx = grid.spacing_mm * 1e-3
        table = medium.table
        self.alpha_far = max(
            (
                kernels.conductivity_of(h, table, n) / kernels.heat_capacity_of(h, table, n)
                for n, h in enumerate(medium.initial_h)
                if table[n, kernels.FIXED] == 0
            ),
            default=0.0,
        )
        self.tolerance_h = ACTIVE_BOX_TOLERANCE_C * float(np.min(table[:, kernels.C_FROZEN]))

    @property
    def voxels(self) -> int:
        return int(np.prod(self.hi - self.lo))

    def reach(self, seconds: float) -> int:
        """Voxels heat diffuses in `seconds` through tissue in its initial state (3 √(2 α t)), plus one."""
        return int(math.ceil(3.0 * math.sqrt(2.0 * self.alpha_far * seconds) / self.dx)) + 1

    def include(self, first: np.ndarray, last: np.ndarray, seconds: float) -> None:
        """Grow the box to hold the voxels from `first` to before `last` on each axis, and `reach` beyond them;
        where nothing was found, a sentinel far beyond the grid (first ≫ hi, last ≪ lo) grows nothing."""
        reach = self.reach(seconds)
        self.lo = np.clip(np.minimum(self.lo, first - reach), self.limit_lo, self.limit_hi)
        self.hi = np.clip(np.maximum(self.hi, last + reach), self.limit_lo, self.limit_hi)

    def include_mask(self, mask: np.ndarray, seconds: float) -> None:
        """`include` the voxels of a mask."""
        big = np.int64(1) << 40
        first, last = np.full(3, big), np.full(3, -big)
        for axis in range(3):
            present = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
            if present.size:
                first[axis], last[axis] = present[0], present[-1] + 1
        self.include(first, last, seconds)

    def seed(self, fields: _Fields, medium: _Medium, sinks: ProbeSinks) -> None:
        """Open the box around the voxels one explicit step of L would move, and the probes' voxels."""
        H, phis = medium.H, fields.phis
        trial = H.copy()
        kernels.stage_pass(
            H, phis[0], H, trial, phis[1], fields.frozen, medium.runs, medium.stencil, np.float32(0.0),
            np.float32(1.0), np.float32(1.0 / self.dx**2), self.limit_lo, self.limit_hi, fields.ledger_rows,
        )  # fmt: skip
        kernels.interface_pass(
            H, phis[0], trial, phis[1], medium.labels, medium.table, medium.stencil, medium.interface, 1.0,
            self.dx, self.limit_lo, self.limit_hi,
        )  # fmt: skip
        seeds = np.abs(trial - H) > self.tolerance_h
        seeds.reshape(-1)[sinks.flat_index] = True
        phis[1] = phis[0]
        fields.ledger_rows[:] = 0.0
        self.include_mask(seeds, CHUNK_S)

    def follow(self, H: np.ndarray, initial: np.ndarray, seconds: float) -> None:
        """Grow the box to the voxels that moved from their initial state, after `seconds` of steps."""
        if np.any(self.lo > self.limit_lo) or np.any(self.hi < self.limit_hi):
            first, last = kernels.changed_extent(
                H, initial, np.float32(self.tolerance_h), self.lo, self.hi, self.reach(seconds)
            )
            self.include(first, last, seconds)


Drive = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Per probe piece: mode, line conductance, the temperature it pulls towards, power (`kernels.advance`)."""


def _probe_drive(
    phase: Phase,
    probes: Sequence[ProbePlacement],
    sinks: ProbeSinks,
    line_power_w_m: Sequence[float] | None,
    probe_surface_temp_c: float | None,
) -> Drive:
    """Each probe piece's setting during a phase: (mode, line conductance, temperature it pulls towards, power);
    the pieces of a moved probe (a tract freeze) are those of the probe where it was."""
    n_probes = len(probes)
    tissue_conductance = np.zeros(n_probes)
    tissue_conductance[sinks.owner] = sinks.line_conductance
    mode = np.full(n_probes, kernels.PROBE_OFF, dtype=np.int64)
    conductance = np.zeros(n_probes)
    surface = np.zeros(n_probes)
    power = np.zeros(n_probes)
    for p, placement in enumerate(probes):
        if phase.kind in ("freeze", "tract_freeze"):
            flow = phase.flow_fraction * placement.flow_fraction
            if line_power_w_m is not None:
                mode[p], power[p] = kernels.PROBE_POWER, line_power_w_m[p] * flow
            elif probe_surface_temp_c is not None:
                mode[p], conductance[p], surface[p] = (
                    kernels.PROBE_SURFACE_TEMPERATURE,
                    tissue_conductance[p] * flow,
                    probe_surface_temp_c,
                )
            else:
                probe = placement.probe
                mode[p], conductance[p], surface[p] = (
                    kernels.PROBE_SURFACE_TEMPERATURE,
                    probe_coupling_w_mk(tissue_conductance[p], probe.film_conductance_w_mk(flow)),
                    probe.cooling.cryogen_temperature_c,
                )
        elif phase.kind == "active_thaw":
            mode[p], conductance[p], surface[p] = (
                kernels.PROBE_SURFACE_TEMPERATURE,
                tissue_conductance[p],
                ACTIVE_THAW_SURFACE_C,
            )
    return mode[sinks.owner], conductance[sinks.owner], surface[sinks.owner], power[sinks.owner]  # per piece


@dataclass
class _Clock:
    """Where a run stands: simulated seconds, the longest super step taken, the voxel updates made."""

    total_s: float
    now_s: float = 0.0
    longest_step_s: float = 0.0
    voxel_updates: int = 0


class _Recorder:
    """Temperature histories at named points (trilinear between the 8 voxels around each)."""

    def __init__(self, grid: Grid, record_points: Mapping[str, np.ndarray], medium: _Medium):
        self.index = {name: grid.index_of(np.asarray(p, dtype=np.float64)) for name, p in record_points.items()}
        self.series: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in record_points}
        self.medium = medium

    def __call__(self, now_s: float, H: np.ndarray) -> None:
        for name, index in self.index.items():
            self.series[name][0].append(now_s)
            self.series[name][1].append(_trilinear_temperature(H, self.medium.labels, self.medium.table, index))

    def histories(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: (np.asarray(ts), np.asarray(vs)) for name, (ts, vs) in self.series.items()}


def _advance(
    fields: _Fields,
    medium: _Medium,
    box: _ActiveBox,
    sinks: ProbeSinks,
    drive: Drive,
    thresholds: np.ndarray,
    dx: float,
    tau: float,
    stages: int,
    count: int,
    sample_every: int,
) -> int:
    """`kernels.advance` over the active box, on one thread where the box is too small for a barrier per
    stage to pay (`SERIAL_BELOW_VOXELS`). Returns the voxel updates made."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1 if box.voxels < SERIAL_BELOW_VOXELS else threads)
    mode, conductance, surface, power = drive
    try:
        updates = kernels.advance(
            fields.Hs, fields.phis, fields.current, medium.labels, medium.runs, medium.table, medium.stencil,
            fields.frozen, fields.min_t, thresholds, fields.time_below, box.lo, box.hi, medium.interface, dx, tau,
            stages, count, sample_every, fields.ledger, fields.ledger_rows, sinks.ptr, sinks.flat_index,
            sinks.weight, sinks.effective_length, mode, conductance, surface, power,
        )  # fmt: skip
        return int(updates)
    finally:
        numba.set_num_threads(threads)


def _run_stretch(
    seconds: float,
    target_s: float,
    dt_limit: float,
    fields: _Fields,
    medium: _Medium,
    box: _ActiveBox,
    sinks: ProbeSinks,
    drive: Drive,
    thresholds: np.ndarray,
    clock: _Clock,
    recorder: _Recorder,
    progress: Callable[[float], None] | None,
) -> None:
    """Advance through a stretch of `seconds` with the same probe settings, by the steps of `step_schedule`,
    in chunks of about `CHUNK_S` after each of which the box follows the disturbance, the points are recorded
    and progress is reported."""
    dx = box.dx
    for tau, stages, n_steps in step_schedule(seconds, dt_limit, target_s):
        clock.longest_step_s = max(clock.longest_step_s, tau)
        sample_every = max(1, round(SAMPLE_INTERVAL_S / tau))
        chunk = max(1, round(CHUNK_S / tau))
        done = 0
        while done < n_steps:
            count = min(chunk, n_steps - done)
            clock.voxel_updates += _advance(
                fields, medium, box, sinks, drive, thresholds, dx, tau, stages, count, sample_every
            )
            box.follow(fields.H, medium.H, count * tau)
            done += count
            clock.now_s += count * tau
            recorder(clock.now_s, fields.H)
            if progress is not None:
                progress(min(1.0, clock.now_s / clock.total_s))
    if not math.isfinite(float(np.sum(fields.H, dtype=np.float64))):
        raise RuntimeError(
            f"the thermal scheme diverged by t = {clock.now_s:.1f} s (longest step "
            f"{clock.longest_step_s:.3g} s): please report this case"
        )


def _energy_j(fields: _Fields, medium: _Medium, voxel_volume: float) -> dict[str, float]:
    """The energy ledger (J): the enthalpy change of the moving voxels and the heat each source put in."""
    moving = ~medium.fixed
    ledger = fields.ledger * voxel_volume
    return {
        "enthalpy_change": float(np.sum(fields.H[moving], dtype=np.float64)) * voxel_volume
        - float(np.sum(medium.H[moving], dtype=np.float64)) * voxel_volume,
        "probes": float(ledger[kernels.LEDGER_PROBES]),
        "perfusion": float(ledger[kernels.LEDGER_PERFUSION]),
        "metabolic": float(ledger[kernels.LEDGER_METABOLIC]),
        "boundary": float(ledger[kernels.LEDGER_BOUNDARY]),
        "vessels": float(ledger[kernels.LEDGER_VESSEL]),
    }


def simulate(
    grid: Grid,
    probes: Sequence[ProbePlacement],
    protocol: Protocol,
    *,
    tissue_labels: np.ndarray | None = None,
    tissues: Mapping[int, Tissue] | Tissue = TISSUES["liver"],
    vessels: Sequence[Vessel] = (),
    record_points: Mapping[str, np.ndarray] | None = None,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    initial_temp_c: float | None = None,
    probe_surface_temp_c: float | None = None,
    progress: Callable[[float], None] | None = None,
    dirichlet_boundary: bool = True,
    fixed_temperature: tuple[np.ndarray, float] | None = None,
    line_power_w_m: Sequence[float] | None = None,
    time_step_s: float | None = None,
    preview: bool = False,
) -> ThermalResult:
    """Simulate a freeze–thaw protocol.

    Parameters
    ----------
    grid : Grid
    probes : sequence of ProbePlacement
    protocol : Protocol
    tissue_labels : int array of the grid's shape, optional
        Label per voxel; every label needs an entry in `tissues`. None: one homogeneous tissue.
    tissues : Tissue or mapping label → Tissue
    vessels : sequence of Vessel
        Lumens held at 37 °C behind a convective wall (h = Nu k_blood / D).
    record_points : mapping name → LPS point (mm), optional
        Points whose temperature history is recorded (every 5 simulated seconds).
    isotherms_c : sequence of float
        Temperatures whose time-below is accumulated.
    initial_temp_c : float, optional
        Uniform initial temperature; None starts each tissue at its perfused steady state T_a + Q_m/W.
    probe_surface_temp_c : float, optional
        Replace each probe's calibrated cooling by this temperature held on its physical surface during
        freezes (for checks against exact solutions).
    progress : callable, optional
        Called with the completed fraction in [0, 1].
    dirichlet_boundary : bool
        True: the grid's outer layer stays at its initial temperature (a bath). False: faces of the grid
        carry no heat (used by the thin-slab validations).
    fixed_temperature : (bool mask, temperature °C), optional
        Extra voxels held at a fixed temperature throughout (a Dirichlet face for the Neumann problem).
    line_power_w_m : sequence of float, optional
        Per probe, a fixed heat extraction per metre of active length during freezes instead of the
        surface-temperature coupling (the line-sink problem).
    time_step_s : float, optional
        Longest super step (`step_schedule`); None: `SUPER_STEP_S`. At or below the forward-Euler limit
        the scheme is the plain explicit enthalpy method.
    preview : bool
        With `time_step_s` None, super steps of up to `PREVIEW_SUPER_STEP_S` instead of `SUPER_STEP_S`: about
        half the stencil passes, for previews whose isotherms need not match explicit steps as closely.

    Returns
    -------
    ThermalResult

    References
    ----------
    H. H. Pennes, J Appl Physiol 1948;1:93. V. R. Voller, C. R. Swaminathan, Numer Heat Transfer B 1991;19:175.
    """
    started = time.perf_counter()
    probes = list(probes)
    record_points = dict(record_points or {})
    if not isinstance(protocol, Protocol):
        raise InputError("protocol", "a Protocol (see parse_protocol)", type(protocol).__name__)
    _check_placements(grid, probes)
    thresholds = np.asarray(sorted({float(t) for t in isotherms_c}, reverse=True), dtype=np.float64)
    if not np.all(np.isfinite(thresholds)):
        raise InputError("isotherms_c", "finite temperatures", list(isotherms_c))
    for name, point in record_points.items():
        if not grid.contains(np.asarray(point, dtype=np.float64)):
            raise InputError(f"record_points.{name}", "a point inside the grid", np.asarray(point).tolist())
    if initial_temp_c is not None and not math.isfinite(initial_temp_c):
        raise InputError("initial_temp_c", "a finite temperature", initial_temp_c)
    if time_step_s is not None and not (math.isfinite(time_step_s) and time_step_s > 0):
        raise InputError("time_step_s", "a positive number of seconds", time_step_s)
    medium = _medium(grid, tissue_labels, tissues, vessels, initial_temp_c, fixed_temperature)
    sinks, radii, frozen_k = _probe_sinks(grid, probes, medium)
    if line_power_w_m is not None and len(line_power_w_m) != len(probes):
        raise InputError("line_power_w_m", f"{len(probes)} values, one per probe", len(line_power_w_m))
    dt_limit = _forward_euler_limit_s(grid, medium, sinks)
    target_s = time_step_s if time_step_s is not None else (PREVIEW_SUPER_STEP_S if preview else SUPER_STEP_S)

    fields = _Fields.initial(grid, medium, thresholds)
    fields.sample(medium, thresholds)
    box = _ActiveBox(grid, medium, dirichlet_boundary)
    box.seed(fields, medium, sinks)
    recorder = _Recorder(grid, record_points, medium)
    recorder(0.0, fields.H)
    clock = _Clock(total_s=protocol.total_seconds)
    for n, phase in enumerate(protocol.phases):
        drive = _probe_drive(phase, probes, sinks, line_power_w_m, probe_surface_temp_c)
        for seconds, phase_sinks in _phase_segments(n, phase, grid, probes, radii, medium.fixed, frozen_k, sinks):
            if phase_sinks is not sinks:
                moved = np.zeros(grid.shape, dtype=bool)
                moved.reshape(-1)[phase_sinks.flat_index] = True
                box.include_mask(moved, CHUNK_S)
            _run_stretch(
                seconds, target_s, dt_limit, fields, medium, box, phase_sinks, drive, thresholds, clock, recorder,
                progress,
            )  # fmt: skip
    fields.sample(medium, thresholds)  # the last sample of the minimum temperature
    H = fields.H
    kernels.state_fields(H, medium.labels, medium.stencil, fields.final_t, fields.phis[1 - fields.current[1]])
    liquidus_h = medium.table[medium.labels, kernels.H_LIQUIDUS]
    ice_fraction = np.where(medium.fixed, 0.0, 1.0 - np.clip(H / np.where(liquidus_h > 0, liquidus_h, 1.0), 0.0, 1.0))
    return ThermalResult(
        grid=grid,
        min_temperature_c=fields.min_t,
        final_temperature_c=fields.final_t,
        time_below_s={float(t): fields.time_below[m] for m, t in enumerate(thresholds)},
        histories=recorder.histories(),
        elapsed_s=time.perf_counter() - started,
        ice_fraction=ice_fraction.astype(np.float32),
        energy_j=_energy_j(fields, medium, box.dx**3),
        time_step_s=clock.longest_step_s,
        voxel_updates=clock.voxel_updates,
    )
