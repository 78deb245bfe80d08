"""Thermal engine benchmark: prints a table of measured figures.

(a) One 17G spherical-type probe, 10-min freeze in gel at 37 °C, on 1 mm and 0.5 mm grids.
(b) Three 1.7 mm probes at the corners of a 20 mm equilateral triangle, freeze 10 – passive thaw 5 –
    freeze 10 min, in liver (perfused steady state) with an 8 mm vessel passing the cluster: the vessel runs
    along L, across the probes, at the height of the middle of their active zones, its wall 10 mm from the
    nearest probe's axis. 1 mm grid over a 120 mm cube centred on the cluster.
(c) Problem (b) solved by the FiPy peer (`fipy_peer.py`), at a time step chosen so that it is as converged
    as the engine (see `peer_time_step`), and the ratio of wall times.
(d) Voxel updates per second of the engine's kernel and its effective bandwidth against the machine's copy
    bandwidth measured in the same run.
(e) Peak resident memory of the engine on problem (b).
(f) `cryoplan isotherms` of three 1.7 mm probes in a 20 mm triangle, liver, 10–5–10 min, 1 mm grid.
(g) The 2 mm preview (`simulate(preview=True)`) of the same three probes and 25-min protocol, with its
    isotherm volumes against the same run at the default steps.

Every wall time is also given as a ratio to a minimal parallel Numba 7-point float32 stencil doing 1e9 voxel
updates on a 120³ grid (`common.peer_stencil_s`), timed in the same process before and after the engine's
runs (the faster of the two): the ratios compare across machines and loads where the seconds do not.

Usage: ``python benchmarks/thermal.py [--spacings-mm 1.0,0.5] [--reduced-edge-mm 60] [--peer-steps 2]
[--skip-fipy]``.
All runs happen in this one process, one after another; nothing here is a test (tests never assert times).
"""

from __future__ import annotations

import argparse
import sys

import fipy_peer  # limits its own BLAS threads
import numpy as np
from common import copy_bandwidth_gb_s, markdown_table, peak_memory_bytes, peer_stencil_s, reset_peak_memory

from cryoplan.thermal import TISSUES, Grid, Vessel, parse_protocol, simulate, solver
from cryoplan.thermal.chart import chart_grid, probe_layout

LETHAL_ISOTHERMS_C = (-20.0, -40.0)
#: Bytes each voxel update must move at least: its state read and written once (bytes counted as STREAM
#: does, McCalpin 1995). The state is the enthalpy (float32, read + written), the frozen-once flag (uint8,
#: read + written) and the tissue label (uint8, read).
STATE_BYTES_PER_UPDATE = 4 + 4 + 1 + 1 + 1
#: Bytes the engine's stencil pass moves per voxel update: it reads the stage's enthalpy, the one before it
#: and its Kirchhoff potential (float32; neighbours from cache) and the flag (the label once per run of equal
#: labels), and writes the new enthalpy and potential (float32).
KERNEL_BYTES_PER_UPDATE = 4 + 4 + 4 + 1 + 4 + 4
#: Time-step ladder (s) for the peer, coarsest first; each is checked against its half.
PEER_TIME_STEPS_S = (60.0, 30.0, 15.0, 7.5, 3.75)
#: "Converged": the −20 and −40 °C volumes change by no more than this fraction when the step is halved.
CONVERGED_FRACTION = 0.02


def problem_a(spacing_mm: float):
    """One 17G spherical-type probe, 10-min freeze in gel at 37 °C: the grid and the engine's result."""
    gel = TISSUES["gel"]
    protocol = parse_protocol("freeze:10")
    probes = probe_layout("17g-sphere")
    grid = chart_grid(probes, gel, protocol, spacing_mm)
    return grid, simulate(grid, probes, protocol, tissues=gel, initial_temp_c=37.0)


def problem_b(edge_mm: float = 120.0, initial_temp_c: float | None = None):
    """The arguments of `simulate` for problem (b) on a cube of `edge_mm` at 1 mm."""
    probes = probe_layout("1.7mm", count=3, spacing_mm=20.0, layout="triangle")
    distal, proximal = probes[0].active_segment_mm()
    centre = np.array([0.0, 0.0, 0.5 * (distal[2] + proximal[2])])
    shape = (int(round(edge_mm)),) * 3
    grid = Grid(origin_mm=centre - 0.5 * (np.asarray(shape) - 1), spacing_mm=1.0, shape=shape)
    diameter_mm = 8.0
    nearest_p = max(p.tip_mm[1] for p in probes)  # the vessel passes on the posterior side
    axis_point = np.array([0.0, nearest_p + 10.0 + 0.5 * diameter_mm, centre[2]])
    vessel = Vessel.cylinder(grid, axis_point, [1.0, 0.0, 0.0], diameter_mm)
    protocol = parse_protocol("freeze:10,passive_thaw:5,freeze:10")
    return dict(
        grid=grid,
        probes=probes,
        protocol=protocol,
        tissues=TISSUES["liver"],
        vessels=[vessel],
        initial_temp_c=initial_temp_c,
    )


def triangle_isotherms(spacing_mm: float, preview: bool = False):
    """Three 1.7 mm probes at the corners of a 20 mm triangle, liver, 10–5–10 min, on the grid `cryoplan
    isotherms` makes for them: the engine's result."""
    liver = TISSUES["liver"]
    protocol = parse_protocol("freeze:10,passive_thaw:5,freeze:10")
    probes = probe_layout("1.7mm", count=3, spacing_mm=20.0, layout="triangle")
    grid = chart_grid(probes, liver, protocol, spacing_mm)
    return simulate(grid, probes, protocol, tissues=liver, preview=preview)


def volumes_ml(result) -> dict[float, float]:
    return {t: result.isotherm_volume_ml(t) for t in LETHAL_ISOTHERMS_C}


def largest_change(a: dict[float, float], b: dict[float, float]) -> float:
    """Largest relative difference of the lethal isotherm volumes of two runs."""
    return max(abs(a[t] - b[t]) / b[t] for t in LETHAL_ISOTHERMS_C)


def peer_time_step(edge_mm: float) -> tuple[float, list[dict]]:
    """The largest step of `PEER_TIME_STEPS_S` whose lethal volumes are within `CONVERGED_FRACTION` of the
    run at half that step, found on problem (b) reduced to a cube of `edge_mm` (same grid spacing, probes
    and vessel; the bath closer). Returns the step and every run made (step, volumes, sweeps, wall time)."""
    problem = problem_b(edge_mm)
    runs = []
    for step in PEER_TIME_STEPS_S:
        result = fipy_peer.solve(**problem, time_step_s=step)
        runs.append(
            {
                "time_step_s": step,
                "volumes_ml": volumes_ml(result),
                "sweeps": result.sweeps,
                "steps": result.steps,
                "unconverged_steps": result.unconverged_steps,
                "elapsed_s": result.elapsed_s,
            }
        )
        print(f"  peer, {edge_mm:.0f} mm cube, step {step:g} s: {runs[-1]}", file=sys.stderr, flush=True)
        if len(runs) >= 2 and largest_change(runs[-2]["volumes_ml"], runs[-1]["volumes_ml"]) <= CONVERGED_FRACTION:
            return runs[-2]["time_step_s"], runs
    raise RuntimeError(f"the peer did not converge to {CONVERGED_FRACTION:.0%} down to a {step:g} s step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reduced-edge-mm",
        type=float,
        default=60.0,
        help="cube edge of the reduced problem (b) on which the peer's time step is chosen",
    )
    parser.add_argument("--spacings-mm", default="1.0,0.5", help="grid spacings of problem (a), comma-separated")
    parser.add_argument(
        "--peer-steps",
        type=int,
        default=2,
        help="time steps the peer is timed for on the full problem (b), to extrapolate from",
    )
    parser.add_argument("--skip-fipy", action="store_true", help="leave out (c), the FiPy peer (the slow part)")
    args = parser.parse_args(argv)
    rows: list[list[str]] = []

    def row(quantity: str, measured: str) -> None:
        rows.append([quantity, measured])
        print(f"{quantity}: {measured}", file=sys.stderr, flush=True)

    bandwidth = copy_bandwidth_gb_s()
    row("copy bandwidth (numpy.copyto, bytes read + written, 1 thread)", f"{bandwidth:.1f} GB/s")
    # Compile the kernels before timing (Numba caches them on disk after the first run).
    simulate(**{**problem_b(60.0), "protocol": parse_protocol("freeze:0.05")})
    peer_before = peer_stencil_s()

    b = problem_b()
    reset_peak_memory()
    engine = simulate(**b)
    peak = peak_memory_bytes()
    engine_volumes = volumes_ml(engine)
    isotherms = triangle_isotherms(1.0)
    preview = triangle_isotherms(2.0, preview=True)
    default_2mm = triangle_isotherms(2.0)
    # The serial/parallel threshold (`solver.SERIAL_BELOW_VOXELS`) tuned by the preview run both ways.
    threshold = solver.SERIAL_BELOW_VOXELS
    forced = {}
    for name, value in (("serial", 1 << 62), ("parallel", 0)):
        solver.SERIAL_BELOW_VOXELS = value
        forced[name] = triangle_isotherms(2.0, preview=True).elapsed_s
    solver.SERIAL_BELOW_VOXELS = threshold
    peer_s = min(peer_before, peer_stencil_s())
    row("peer stencil: minimal parallel Numba 7-point float32 stencil, 1e9 voxel updates, 120³ grid", f"{peer_s:.2f} s")
    row(
        "(b) 3 probes (1.7mm), 20 mm triangle, 10–5–10 min, liver, 8 mm vessel, 120 mm cube, 1 mm grid",
        f"{engine.elapsed_s:.1f} s = {engine.elapsed_s / peer_s:.1f} × peer stencil; −20 °C "
        f"{engine_volumes[-20.0]:.2f} ml, −40 °C {engine_volumes[-40.0]:.2f} ml; "
        f"{engine.voxel_updates / 1e9:.2f}e9 voxel updates ({engine.voxel_updates / engine.elapsed_s / 1e6:.0f} M/s)",
    )
    row("(e) peak resident memory of the process during (b)", f"{peak / 1e9:.2f} GB")
    row(
        "(f) cryoplan isotherms: 3 × 1.7mm, 20 mm triangle, liver, 10–5–10 min, 1 mm grid "
        f"{'×'.join(map(str, isotherms.grid.shape))}",
        f"{isotherms.elapsed_s:.1f} s = {isotherms.elapsed_s / peer_s:.1f} × peer stencil; "
        f"{isotherms.voxel_updates / 1e9:.2f}e9 voxel updates",
    )
    deviation = " / ".join(
        f"{100 * (preview.isotherm_volume_ml(t) / default_2mm.isotherm_volume_ml(t) - 1):+.1f}"
        for t in (0.0, -20.0, -40.0)
    )
    row(
        "(g) 2 mm preview (super steps ≤ 20 s) of (f)",
        f"{preview.elapsed_s:.2f} s = {preview.elapsed_s / peer_s:.2f} × peer stencil (default steps: "
        f"{default_2mm.elapsed_s:.2f} s); 0 / −20 / −40 °C volumes {deviation} % against default steps",
    )
    row(
        f"(g) the same preview on one thread / on every thread (serial below {threshold} voxels in the box)",
        f"{forced['serial']:.2f} s / {forced['parallel']:.2f} s",
    )

    # (d) Tissue started 27 °C below its perfused steady state warms everywhere by 0.3 °C/s from the first step,
    # past the active box's tolerance, so the engine updates the whole interior every step: the kernel's rate.
    full = simulate(**{**problem_b(initial_temp_c=10.0), "protocol": parse_protocol("freeze:1")})
    updates_per_s = full.voxel_updates / full.elapsed_s
    row(
        "(d) voxel updates per second (problem (b) grid, whole 118³ interior updated, 1-min freeze)",
        f"{updates_per_s / 1e6:.0f} M/s ({full.voxel_updates / 1e9:.2f}e9 updates in {full.elapsed_s:.1f} s, "
        f"super steps ≤ {full.time_step_s:.2f} s)",
    )
    for name, per_update in (("state", STATE_BYTES_PER_UPDATE), ("stencil pass", KERNEL_BYTES_PER_UPDATE)):
        rate = updates_per_s * per_update / 1e9
        row(
            f"(d) effective bandwidth, {name} ({per_update} B per update)",
            f"{rate:.1f} GB/s = {rate / bandwidth:.0%} of copy bandwidth",
        )

    if not args.skip_fipy:
        fipy_comparison(args, b, engine, row)
    for spacing in [float(s) for s in args.spacings_mm.split(",") if s.strip()]:
        grid, result = problem_a(spacing)
        volumes = ", ".join(f"{t:g} °C {result.isotherm_volume_ml(t):.2f} ml" for t in (0.0, -20.0, -40.0))
        row(
            f"(a) 1 probe (17g-sphere), gel, 10-min freeze, {spacing:g} mm grid {'×'.join(map(str, grid.shape))}",
            f"{result.elapsed_s:.1f} s = {result.elapsed_s / peer_s:.1f} × peer stencil; {volumes}",
        )

    print(markdown_table(["quantity", "measured"], sorted(rows, key=lambda r: r[0][:3])))  # (a)…(g), then the rest
    return 0


def fipy_comparison(args, b: dict, engine, row) -> None:
    """(c), as rows: the FiPy peer's time step from the reduced problem; its cost per sweep from the full one."""
    step, runs = peer_time_step(args.reduced_edge_mm)
    chosen = next(r for r in runs if r["time_step_s"] == step)
    reduced_volumes = volumes_ml(simulate(**problem_b(args.reduced_edge_mm)))
    row(
        f"(c) peer time step: volumes within {CONVERGED_FRACTION:.0%} of half the step "
        f"(problem (b) in a {args.reduced_edge_mm:.0f} mm cube)",
        f"{step:g} s: {chosen['steps']} steps, {chosen['sweeps']} sweeps; −20/−40 °C volumes "
        f"{chosen['volumes_ml'][-20.0]:.2f}/{chosen['volumes_ml'][-40.0]:.2f} ml vs engine "
        f"{reduced_volumes[-20.0]:.2f}/{reduced_volumes[-40.0]:.2f} ml",
    )
    timed = fipy_peer.solve(**b, time_step_s=step, max_steps=args.peer_steps)
    per_sweep_s = (timed.elapsed_s - timed.setup_s) / timed.sweeps
    fipy_s = timed.setup_s + chosen["sweeps"] * per_sweep_s
    row(
        f"(c) peer on problem (b): setup + {chosen['sweeps']} sweeps × cost per sweep measured over "
        f"its first {timed.steps} steps ({timed.sweeps} sweeps)",
        f"{fipy_s:.0f} s (extrapolated; {timed.setup_s:.1f} s + {per_sweep_s:.1f} s per sweep)",
    )
    row("(c) time ratio, FiPy peer / engine, problem (b)", f"{fipy_s / engine.elapsed_s:.0f}×")


if __name__ == "__main__":
    sys.exit(main())
