"""A peer solver for the thermal benchmark: the physics of `cryoplan.thermal.simulate`, written with FiPy.

It answers "how fast is the engine against a general-purpose finite-volume code solving the same problem on
the same grid to the same accuracy". `tests/benchmarks/test_fipy_peer.py` checks it
against the exact Neumann solution and against the engine on a small 3-D freeze. It is written from
the model equations below and takes the engine's problem description (grid, probe placements, protocol, tissues,
vessels); from the engine's code it reuses only the probes' sub-grid sinks (`engine_probe_kernels`: the pieces
of each probe's active zone, which voxels each piece draws heat from, their weights and the conductance of the
frozen tissue inside the kernel), so that both solve the same discrete problem.

Physics (Pennes with phase change in enthalpy form):

    ∂H/∂t = ∇·(k(T) ∇T) + W (T_a − T) + Q_m − Σ_probes q w/V

on the grid's voxels as cell-centred finite volumes (FiPy `Grid3D`), backward Euler in time.

Face rule, the engine's (`cryoplan.thermal.kernels`). A face between two voxels of one tissue carries the
difference of their Kirchhoff potentials Φ(T) = ∫ k dT over the voxel spacing, so a face across the
freezing front conducts with the mean of k over the temperatures it spans; FiPy takes it as a face diffusion
coefficient equal to the secant conductivity (Φ_n − Φ_c)/(T_n − T_c) (the voxels' mean k where
T_n ≈ T_c). A face between different tissues, or at a vessel wall, conducts with the harmonic mean of the
two voxels' k.

Perfusion and metabolism act only in tissue that has never been below its liquidus. A probe's active zone is
cut into pieces of about 5 mm; each piece draws q = G (T̄ − T_c) per metre, T̄ the weighted mean temperature of
its own kernel voxels. During a freeze T_c is the cryogen's temperature and G the frozen tissue between the
kernel's equivalent radius r_e and the probe's surface r_p, G_s = 2π k_s / ln(r_e/r_p), in series with the film
from the surface to the cryogen, G_f = 2π r_p h f (h the cooling family's film coefficient, f the flow
fraction of phase and probe): G = 1/(1/G_s + 1/G_f), a Robin condition on the probe's surface seen from the
kernel. With a given surface temperature T_c is that temperature and G = G_s f; in an active thaw T_c is
+30 °C and G = G_s; in a passive thaw the probe draws nothing. A vessel lumen is held at 37 °C and a
lumen–tissue face conducts through the film h = Nu·k_blood/D in series with half a voxel of tissue. As in
the engine, the grid's outer voxel layer (on every axis at least 3 voxels long) stays at its initial
temperature (a bath).

Nonlinear solution. Each time step sweeps a linearised problem until no free voxel's solved temperature
differs from its linearisation point by more than `sweep_tolerance_c`; at that point the step satisfies
the enthalpy balance exactly. The linearisation is in enthalpy (Nedjar 2002): solve
D (T − T*) + H* − Hⁿ = Δt [∇·(k*_f ∇T) + W*(T_a − T) + Q* − sinks(T)] for T, with k*_f the face
coefficients above at T*; move H* along the slope D of the segment of H(T) it lies on, never across a kink
of H(T) in one sweep (which keeps the iteration from overshooting through the latent heat), and take
T* = T(H*). A converged step thus carries the Kirchhoff fluxes of its own end state. Fixed-temperature
voxels (lumen, bath layer) are tied to their value by a large implicit source, FiPy's recipe for an
interior fixed value.

References
----------
Pennes HH. J Appl Physiol 1948;1:93–122 (the bioheat equation).
Nedjar B. An enthalpy-based finite element method for nonlinear heat problems involving phase change.
Comput Struct 2002;80:9–21.
Elliott CM. Error analysis of the enthalpy method for the Stefan problem. IMA J Numer Anal 1987;7:61–71
(the enthalpy method as ∂H/∂t = ΔΦ in the Kirchhoff potential).
Patankar SV. Numerical Heat Transfer and Fluid Flow, 1980, §4.2 (harmonic-mean face conductivity between
different materials).
Peaceman DW. Interpretation of well-block pressures in numerical reservoir simulation. SPE J 1978;18:183–194
(a sub-grid line sink coupled to the grid through an equivalent radius).
Guyer JE, Wheeler D, Warren JA. FiPy: partial differential equations with Python. Comput Sci Eng
2009;11(3):6–15.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator
from threadpoolctl import threadpool_limits

os.environ.setdefault("FIPY_SOLVERS", "scipy")
import fipy  # noqa: E402  (the solver suite is chosen through the environment before import)
from fipy.solvers.scipy.preconditioners.scipyPreconditioner import ScipyPreconditioner  # noqa: E402

from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Protocol, Tissue, Vessel  # noqa: E402
from cryoplan.thermal.protocol import ACTIVE_THAW_SURFACE_C, Phase  # noqa: E402
from cryoplan.thermal.solver import ProbeSinks  # noqa: E402  (used by `engine_probe_kernels` alone)
from cryoplan.thermal.vessel import BLOOD_TEMPERATURE_C  # noqa: E402

#: Temperature interval over which the sweep's slope spreads a single-temperature phase change (°C). It
#: sets only how fast the sweeps converge; the converged step satisfies the exact enthalpy balance.
JUMP_WIDTH_C = 0.5
#: Below this temperature difference across a face (°C) its secant conductivity (Φ_n − Φ_c)/(T_n − T_c) is
#: replaced by the mean of the two voxels' k (its limit; the flux there is negligible either way).
SECANT_MIN_RISE_C = 1e-6
#: Fixed-temperature voxels are tied to their value by this many times the largest conductance of a voxel.
HOLD_FACTOR = 1e4


@dataclass(frozen=True)
class PeerResult:
    """What the peer reports: the lowest temperature each voxel reached (at the end of each step), the final
    field, and what it cost."""

    grid: Grid
    min_temperature_c: np.ndarray
    final_temperature_c: np.ndarray
    elapsed_s: float
    setup_s: float
    steps: int
    sweeps: int
    unconverged_steps: int

    def isotherm_volume_ml(self, temperature_c: float) -> float:
        """Volume of the voxels that reached `temperature_c` or colder, in ml (as the engine counts it)."""
        return float(np.count_nonzero(self.min_temperature_c <= temperature_c)) * self.grid.voxel_volume_ml


class _Medium:
    """Per-voxel property arrays (FiPy cell order) and the enthalpy relation of the engine's tissues.

    H is 0 at the solidus; H = C_f (T − T_s) below it, H = H_l + C_u (T − T_l) above the liquidus, and across
    the mushy range linear from 0 to H_l = L + ½ (C_f + C_u)(T_l − T_s). k is k_f below the solidus, k_u
    above the liquidus and linear in the liquid fraction between; with a single phase-change temperature a
    partly frozen voxel conducts as ice (it holds the front). Φ(T) = ∫ k dT from the solidus.
    """

    def __init__(self, rows: Sequence[Tissue], labels: np.ndarray):
        def per_voxel(name: str) -> np.ndarray:
            return np.array([getattr(t, name) for t in rows], dtype=np.float64)[labels]

        self.k_u = per_voxel("conductivity_unfrozen_w_mk")
        self.k_f = per_voxel("conductivity_frozen_w_mk")
        self.c_u = per_voxel("heat_capacity_unfrozen_j_m3k")
        self.c_f = per_voxel("heat_capacity_frozen_j_m3k")
        self.t_s = per_voxel("solidus_c")
        self.t_l = per_voxel("liquidus_c")
        self.perfusion = per_voxel("perfusion_w_m3k")
        self.t_a = per_voxel("arterial_temperature_c")
        self.q_m = per_voxel("metabolic_heat_w_m3")
        width = self.t_l - self.t_s
        self.h_l = per_voxel("latent_heat_j_m3") + 0.5 * (self.c_f + self.c_u) * width
        self.mushy_slope = self.h_l / np.maximum(width, JUMP_WIDTH_C)

    def enthalpy(self, t: np.ndarray) -> np.ndarray:
        width = self.t_l - self.t_s
        fraction = np.clip((t - self.t_s) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        return np.where(
            t <= self.t_s,
            self.c_f * (t - self.t_s),
            np.where(t >= self.t_l, self.h_l + self.c_u * (t - self.t_l), fraction * self.h_l),
        )

    def temperature(self, h: np.ndarray) -> np.ndarray:
        mushy = self.t_s + h / self.h_l * (self.t_l - self.t_s)
        return np.where(
            h < 0.0, self.t_s + h / self.c_f, np.where(h > self.h_l, self.t_l + (h - self.h_l) / self.c_u, mushy)
        )

    def conductivity(self, h: np.ndarray) -> np.ndarray:
        liquid = np.where(self.t_l > self.t_s, np.clip(h / self.h_l, 0.0, 1.0), (h >= self.h_l).astype(float))
        return self.k_f + liquid * (self.k_u - self.k_f)

    def kirchhoff(self, t: np.ndarray) -> np.ndarray:
        """Φ(T) = ∫ k dT from the solidus (W/m) for the k(T) above: k_f (T − T_s) below the solidus, the
        integral of the linear k across the mushy range, then k_u (T − T_l) above the liquidus."""
        width = self.t_l - self.t_s
        within = np.clip(t, self.t_s, self.t_l) - self.t_s
        mushy = self.k_f * within + 0.5 * (self.k_u - self.k_f) * within**2 / np.where(width > 0, width, 1.0)
        return self.k_f * (np.minimum(t, self.t_s) - self.t_s) + mushy + self.k_u * (np.maximum(t, self.t_l) - self.t_l)

    def slope(self, h: np.ndarray) -> np.ndarray:
        """dH/dT of the segment H lies on; at a kink (either end of the mushy range), the mushy slope."""
        return np.where(h < 0.0, self.c_f, np.where(h > self.h_l, self.c_u, self.mushy_slope))

    def advance(self, h: np.ndarray, t: np.ndarray, t_solved: np.ndarray) -> np.ndarray:
        """Move H from (h, t) towards the solved temperature along its segment, stopping at the next kink.

        From a kink, a move out of the mushy range follows the slope of the phase it enters.
        """
        moved = h + self.slope(h) * (t_solved - t)
        down = t_solved < t
        moved = np.where((h == 0.0) & down, self.c_f * (t_solved - self.t_s), moved)
        moved = np.where((h == self.h_l) & ~down, self.h_l + self.c_u * (t_solved - self.t_l), moved)
        lower = np.where(h > self.h_l, self.h_l, np.where(h > 0.0, 0.0, -np.inf))
        upper = np.where(h < 0.0, 0.0, np.where(h < self.h_l, self.h_l, np.inf))
        return np.clip(moved, lower, upper)


class _DiagonalPreconditioner(ScipyPreconditioner):
    """Jacobi preconditioning as a multiplication by the inverse diagonal.

    FiPy's own `JacobiPreconditioner` applies the diagonal through a sparse LU solve, which costs more than
    the conjugate-gradient iteration it preconditions; this is the same preconditioner without that cost.
    """

    def _applyToMatrix(self, matrix):
        inverse_diagonal = 1.0 / matrix.diagonal()
        return LinearOperator(matrix.shape, matvec=lambda x: inverse_diagonal * x.ravel()), matrix


@dataclass(frozen=True)
class KernelPiece:
    """One piece of a probe's active zone as the engine's sub-grid sink has it.

    Attributes
    ----------
    probe : int
        Index of the probe the piece belongs to.
    flat_index : numpy.ndarray
        C-order flat indices of the voxels the piece draws heat from.
    weight : numpy.ndarray
        Their kernel weights (metres of line; their sum is the piece's length).
    tissue_conductance_w_mk : float
        Conductance per metre of the frozen tissue between the kernel's equivalent radius and the probe's
        surface, 2π k_s / ln(r_e/r_p) (W/m·K).
    """

    probe: int
    flat_index: np.ndarray
    weight: np.ndarray
    tissue_conductance_w_mk: float


def engine_probe_kernels(
    grid: Grid,
    probes: Sequence[ProbePlacement],
    fixed: np.ndarray,
    frozen_conductivity_w_mk: Sequence[float],
) -> list[KernelPiece]:
    """The probes' sub-grid sinks as the engine builds them, the one part the peer takes from the engine's
    code (so that both solve one discrete problem): each probe's active zone in pieces, each with its voxels,
    weights and frozen-tissue conductance, on the probe's physical radius.

    Parameters
    ----------
    fixed
        Voxels held at a fixed temperature (grid shape), which the kernels leave out.
    frozen_conductivity_w_mk
        Per probe, k of ice in the tissue around the middle of its active zone.
    """
    radii_mm = [placement.probe.radius_mm for placement in probes]
    sinks = ProbeSinks(grid, list(probes), radii_mm, fixed, list(frozen_conductivity_w_mk))
    return [
        KernelPiece(int(sinks.owner[p]), sinks.flat_index[a:b], sinks.weight[a:b], float(sinks.line_conductance[p]))
        for p, (a, b) in enumerate(zip(sinks.ptr[:-1], sinks.ptr[1:]))
    ]


def piece_drive(
    phase: Phase, placement: ProbePlacement, piece: KernelPiece, probe_surface_temp_c: float | None
) -> tuple[float, float] | None:
    """(G, T_c) of a probe piece during a phase: its conductance per metre from the kernel's mean temperature
    to the temperature it pulls towards, and that temperature; None when the probe draws nothing.

    A freeze couples through the frozen tissue in series with the cryogen film 2π r_p h f, or, with a given
    surface temperature, through the tissue alone scaled by the flow fraction f; an active thaw holds
    +30 °C through the tissue.
    """
    g_s = piece.tissue_conductance_w_mk
    if phase.kind == "active_thaw":
        return g_s, ACTIVE_THAW_SURFACE_C
    if phase.kind != "freeze":
        return None
    flow = phase.flow_fraction * placement.flow_fraction
    if probe_surface_temp_c is not None:
        return g_s * flow, probe_surface_temp_c
    probe = placement.probe
    g_f = 2.0 * math.pi * probe.radius_mm * 1e-3 * probe.cooling.heat_transfer_w_m2k * flow
    if g_f <= 0.0:
        return None
    return 1.0 / (1.0 / g_s + 1.0 / g_f), probe.cooling.cryogen_temperature_c


def _fipy_order(array: np.ndarray) -> np.ndarray:
    """A grid array indexed [i, j, k] in FiPy's cell order (i fastest)."""
    return np.asarray(array).ravel(order="F")


def _flat_to_fipy(flat_index: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """C-order flat voxel indices (the engine's) as FiPy cell ids."""
    i, j, k = np.unravel_index(flat_index, shape)
    return i + shape[0] * (j + shape[1] * k)


def solve(
    grid: Grid,
    probes: Sequence[ProbePlacement],
    protocol: Protocol,
    *,
    time_step_s: float,
    tissue_labels: np.ndarray | None = None,
    tissues: Mapping[int, Tissue] | Tissue = TISSUES["liver"],
    vessels: Sequence[Vessel] = (),
    initial_temp_c: float | None = None,
    probe_surface_temp_c: float | None = None,
    fixed_temperature: tuple[np.ndarray, float] | None = None,
    dirichlet_boundary: bool = True,
    max_sweeps: int = 40,
    sweep_tolerance_c: float = 0.05,
    linear_tolerance: float = 1e-8,
    max_steps: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> PeerResult:
    """Solve the problem `cryoplan.thermal.simulate` would, with FiPy and backward Euler steps.

    Parameters
    ----------
    grid, probes, protocol, tissue_labels, tissues, vessels, initial_temp_c, probe_surface_temp_c,
    fixed_temperature, dirichlet_boundary
        As for `cryoplan.thermal.simulate`.
    time_step_s : float
        Largest time step; each phase is divided into equal steps no longer than this.
    max_sweeps : int
        Nonlinear sweeps per step at most; steps still unconverged then are counted in the result.
    sweep_tolerance_c : float
        A step has converged when the linear solve moves no free voxel by more than this from its
        linearisation point.
    linear_tolerance : float
        Conjugate-gradient tolerance, relative to the residual of the sweep's starting point.
    max_steps : int, optional
        Stop after this many time steps (to time the cost of a step on a large problem).
    progress : callable, optional
        Called with the completed fraction of the protocol after each step.

    Returns
    -------
    PeerResult

    Raises
    ------
    ValueError
        For a protocol with a tract freeze, which the peer does not model.
    """
    started = time.perf_counter()
    if any(phase.kind == "tract_freeze" for phase in protocol.phases):
        raise ValueError("the peer does not model a tract freeze (probes withdrawn while freezing)")
    shape = grid.shape
    dx = grid.spacing_mm * 1e-3
    voxel_volume = dx**3
    if isinstance(tissues, Tissue):
        tissues = {0: tissues}
    raw_labels = np.zeros(shape, np.int64) + next(iter(tissues)) if tissue_labels is None else tissue_labels
    keys = sorted(tissues)
    rows = [tissues[key] for key in keys]
    labels = np.searchsorted(keys, _fipy_order(raw_labels))
    medium = _Medium(rows, labels)
    n_cells = labels.size

    # Fixed voxels: vessel lumens at blood temperature behind their wall film, extra fixed voxels, the bath.
    initial = np.array([t.steady_temperature_c if initial_temp_c is None else initial_temp_c for t in rows])[labels]
    conductance_override = np.full(n_cells, np.nan)
    fixed = np.zeros(n_cells, bool)
    hold_value = initial.copy()
    for vessel in vessels:
        lumen = _fipy_order(vessel.mask)
        conductance_override[lumen] = 0.5 * vessel.wall_heat_transfer_w_m2k * dx  # harmonic mean → wall
        fixed |= lumen
        hold_value[lumen] = BLOOD_TEMPERATURE_C
    is_lumen = ~np.isnan(conductance_override)
    if fixed_temperature is not None:
        mask = _fipy_order(np.asarray(fixed_temperature[0], dtype=bool))
        fixed |= mask
        hold_value[mask] = fixed_temperature[1]
    sink_fixed = fixed.reshape(shape, order="F")
    if dirichlet_boundary:  # the outer layer of every axis at least 3 voxels long
        bath = np.zeros(shape, bool)
        for axis, size in enumerate(shape):
            if size >= 3:
                bath[(slice(None),) * axis + ([0, size - 1],)] = True
        fixed |= _fipy_order(bath)
    free = ~fixed

    # Probes: the engine's sub-grid kernels, in pieces (voxels, weights in metres of line, tissue conductance).
    frozen_k = []
    for placement in probes:
        a, b = placement.active_segment_mm()
        middle = tuple(np.clip(np.round(grid.index_of(0.5 * (a + b))).astype(int), 0, np.asarray(shape) - 1))
        frozen_k.append(rows[int(np.searchsorted(keys, np.asarray(raw_labels)[middle]))].conductivity_frozen_w_mk)
    pieces = engine_probe_kernels(grid, probes, sink_fixed, frozen_k)
    cells_of = [_flat_to_fipy(piece.flat_index, shape) for piece in pieces]

    mesh = fipy.Grid3D(dx=dx, dy=dx, dz=dx, nx=shape[0], ny=shape[1], nz=shape[2])
    face_cells = np.asarray(mesh.faceCellIDs.filled(-1))
    first = face_cells[0]
    second = np.where(face_cells[1] >= 0, face_cells[1], face_cells[0])  # outer faces: no flux (zero gradient)
    # Faces within one tissue (a lumen counts as its own material, as in the engine) carry Kirchhoff fluxes.
    within_tissue = (labels[first] == labels[second]) & (is_lumen[first] == is_lumen[second])
    temperature = fipy.CellVariable(mesh=mesh, value=initial)
    face_conductivity = fipy.FaceVariable(mesh=mesh, value=0.0)
    implicit = fipy.CellVariable(mesh=mesh, value=0.0)
    explicit = fipy.CellVariable(mesh=mesh, value=0.0)
    equation = fipy.ImplicitSourceTerm(coeff=implicit) == fipy.DiffusionTerm(coeff=face_conductivity) + explicit
    solver = fipy.LinearCGSolver(
        tolerance=linear_tolerance, criterion="initial", iterations=10000, precon=_DiagonalPreconditioner()
    )
    hold = np.where(fixed, HOLD_FACTOR * 6.0 * float(np.max(np.maximum(medium.k_f, medium.k_u))) / dx**2, 0.0)

    h_now = medium.enthalpy(np.where(fixed, hold_value, initial))
    t_now = medium.temperature(h_now)
    ever_frozen = h_now < medium.h_l
    min_temperature = t_now.copy()
    steps = sweeps = unconverged = 0
    setup_s = time.perf_counter() - started
    done_s = 0.0
    total_s = protocol.total_seconds
    # One BLAS thread: the conjugate gradients are memory-bound vector operations, and OpenBLAS threads
    # spinning against other work on a loaded 2-core machine made them several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for phase in protocol.phases:
            n_steps = max(1, math.ceil(phase.seconds / time_step_s - 1e-9))
            dt = phase.seconds / n_steps
            coupling = []  # (voxels, weights, conductance per metre, pulled-to temperature) of each drawing piece
            for piece, cells in zip(pieces, cells_of):
                drive = piece_drive(phase, probes[piece.probe], piece, probe_surface_temp_c)
                if drive is not None:
                    coupling.append((cells, piece.weight, *drive))
            for _ in range(n_steps if max_steps is None else min(n_steps, max_steps - steps)):
                h_star, t_star = h_now.copy(), t_now.copy()
                for _sweep in range(max_sweeps):
                    k_cell = np.where(is_lumen, conductance_override, medium.conductivity(h_star))
                    phi = medium.kirchhoff(t_star)
                    rise = t_star[second] - t_star[first]
                    secant = np.divide(
                        phi[second] - phi[first],
                        rise,
                        out=0.5 * (k_cell[first] + k_cell[second]),
                        where=np.abs(rise) > SECANT_MIN_RISE_C,
                    )
                    harmonic = 2.0 * k_cell[first] * k_cell[second] / (k_cell[first] + k_cell[second])
                    face_conductivity.setValue(np.where(within_tissue, secant, harmonic))
                    living = free & ~ever_frozen & (h_star >= medium.h_l)
                    perfusion = np.where(living, medium.perfusion, 0.0)
                    slope = medium.slope(h_star)
                    sink_implicit = np.zeros(n_cells)
                    sink_explicit = np.zeros(n_cells)
                    for cells, weights, g, held_c in coupling:
                        # q = G (T̄ − T_c) per metre, T̄ the piece's own mean, drawn from voxel n as q w_n / V.
                        # Written as G (T_n − T_c) + G (T̄ − T_n): the first part implicit in the voxel's own
                        # temperature, the second lagging one sweep (a lagged T̄ alone makes the sweeps oscillate
                        # at large steps).
                        mean_t = float(weights @ t_star[cells]) / weights.sum()
                        own = g * weights / voxel_volume
                        np.add.at(sink_implicit, cells, own)
                        np.add.at(sink_explicit, cells, own * (held_c - (mean_t - t_star[cells])))
                    implicit.setValue(slope / dt + perfusion + hold + sink_implicit)
                    explicit.setValue(
                        slope * t_star / dt
                        - (h_star - h_now) / dt
                        + perfusion * medium.t_a
                        + np.where(living, medium.q_m, 0.0)
                        + hold * hold_value
                        + sink_explicit
                    )
                    temperature.setValue(t_star)
                    equation.solve(var=temperature, solver=solver)
                    solved = np.asarray(temperature.value)
                    residual_c = float(np.max(np.abs(solved - t_star)[free]))
                    h_star = np.where(fixed, h_now, medium.advance(h_star, t_star, solved))
                    t_star = medium.temperature(h_star)
                    sweeps += 1
                    if residual_c <= sweep_tolerance_c:
                        break
                else:
                    unconverged += 1
                h_now, t_now = h_star, t_star
                ever_frozen |= h_now < medium.h_l
                np.minimum(min_temperature, t_now, out=min_temperature)
                steps += 1
                done_s += dt
                if progress is not None:
                    progress(min(1.0, done_s / total_s))

    return PeerResult(
        grid=grid,
        min_temperature_c=min_temperature.reshape(shape, order="F"),
        final_temperature_c=t_now.reshape(shape, order="F"),
        elapsed_s=time.perf_counter() - started,
        setup_s=setup_s,
        steps=steps,
        sweeps=sweeps,
        unconverged_steps=unconverged,
    )
