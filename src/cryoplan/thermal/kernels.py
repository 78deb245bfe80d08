"""Numba kernels of the explicit enthalpy scheme (7-point stencil) for the Pennes equation with phase change.

State: volumetric enthalpy H (float32, J/m³, zero at each tissue's solidus) per voxel, a flag marking tissue
that has frozen (perfusion and metabolism stay off there), and a label per voxel indexing a row of the
property table `props` (columns below). One time step is: temperatures, conductivities and Kirchhoff
potentials from H (pass 1), conduction, perfusion and metabolism into H (pass 2, in place: pass 2 reads only
pass-1 arrays across voxels), then the probes' sinks, implicit in each probe's coupling.

Conduction between two voxels of the same tissue is the difference of their Kirchhoff potentials
Φ(T) = ∫ k dT (∂H/∂t = ∇²Φ + …), so a face that straddles the phase change conducts with the mean of k over
the temperatures it spans: ice up to the front, unfrozen tissue beyond it. A harmonic mean of the two
voxels' k there treated the half voxel of ice next to the front as unfrozen tissue, and left the steady
frozen radius around a probe in perfused tissue with a single phase-change temperature 0.46–0.96 mm short on
a 0.5 mm grid (six random draws; 0.11–0.23 mm short with Φ). Faces between different tissues, and
vessel walls, keep the harmonic mean of k.

References
----------
V. R. Voller, C. R. Swaminathan, Numer Heat Transfer B 1991;19:175 (explicit enthalpy method).
C. M. Elliott, IMA J Numer Anal 1987;7:61 (the enthalpy method in the form ∂H/∂t = ΔΦ).
S. V. Patankar, Numerical Heat Transfer and Fluid Flow, 1980, §4.2 (harmonic-mean face conductivity).
H. H. Pennes, J Appl Physiol 1948;1:93.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

# Columns of the property table (one row per label).
C_FROZEN, C_UNFROZEN, K_FROZEN, K_UNFROZEN, T_SOLIDUS, T_LIQUIDUS, H_LIQUIDUS = 0, 1, 2, 3, 4, 5, 6
PERFUSION_W, ARTERIAL_T, METABOLIC_Q, FIXED, WALL_H = 7, 8, 9, 10, 11
N_PROPS = 12

# Columns of the energy ledger (W/m³ summed over voxels; the solver multiplies by dt and the voxel volume).
# The probes' heat is returned by `advance` itself.
LEDGER_BOUNDARY, LEDGER_VESSEL, LEDGER_PERFUSION, LEDGER_METABOLIC = 0, 1, 2, 3
N_LEDGER = 4

# Probe modes during a phase.
PROBE_OFF, PROBE_SURFACE_TEMPERATURE, PROBE_POWER = 0, 1, 2


@njit(cache=True, inline="always")
def temperature_of(h, props, lab):
    """T(H) of the piecewise-linear enthalpy relation of Tissue.enthalpy_j_m3."""
    if h < 0.0:
        return props[lab, T_SOLIDUS] + h / props[lab, C_FROZEN]
    h_l = props[lab, H_LIQUIDUS]
    if h > h_l:
        return props[lab, T_LIQUIDUS] + (h - h_l) / props[lab, C_UNFROZEN]
    if h_l > 0.0:
        return props[lab, T_SOLIDUS] + h / h_l * (props[lab, T_LIQUIDUS] - props[lab, T_SOLIDUS])
    return props[lab, T_SOLIDUS]


@njit(cache=True, inline="always")
def conductivity_of(h, props, lab):
    """k(H): frozen below the solidus, unfrozen above the liquidus, linear in the liquid fraction between.

    Used on faces between different tissues (within one tissue conduction goes through `kirchhoff_of`). At
    a single phase-change temperature a partly frozen voxel holds the front and conducts as ice.
    """
    h_l = props[lab, H_LIQUIDUS]
    if h <= 0.0:
        return props[lab, K_FROZEN]
    if h >= h_l:
        return props[lab, K_UNFROZEN]
    if props[lab, T_LIQUIDUS] == props[lab, T_SOLIDUS]:
        return props[lab, K_FROZEN]
    return props[lab, K_FROZEN] + h / h_l * (props[lab, K_UNFROZEN] - props[lab, K_FROZEN])


@njit(cache=True, inline="always")
def kirchhoff_of(t, props, lab):
    """Φ(T) = ∫ k dT from the solidus (W/m) for the k(T) of `Tissue.conductivity_w_mk` (k_s below the
    solidus, linear across the mushy range, k_u above), as `Tissue.kirchhoff_w_m`; physics.md §5.2."""
    k_s = props[lab, K_FROZEN]
    k_u = props[lab, K_UNFROZEN]
    t_s = props[lab, T_SOLIDUS]
    t_l = props[lab, T_LIQUIDUS]
    if t <= t_s:
        return k_s * (t - t_s)
    span = t_l - t_s
    if t >= t_l:
        return 0.5 * (k_s + k_u) * span + k_u * (t - t_l)
    x = t - t_s
    return k_s * x + 0.5 * (k_u - k_s) * x * x / span


@njit(cache=True, inline="always")
def heat_capacity_of(h, props, lab):
    """dH/dT (J/m³·K); within a single-temperature phase change it is unbounded (returned as 1e30)."""
    if h < 0.0:
        return props[lab, C_FROZEN]
    h_l = props[lab, H_LIQUIDUS]
    if h > h_l:
        return props[lab, C_UNFROZEN]
    span = props[lab, T_LIQUIDUS] - props[lab, T_SOLIDUS]
    return h_l / span if span > 0.0 else 1e30


def _state_pass(H, label, props, T, K, P, lo, hi, dx, sample, dt_sample, min_t, thresholds, time_below):
    """Pass 1: T, k and the Kirchhoff potential Φ from H over the box [lo, hi) (a lumen gets K = h dx/2, see
    `conduction_pass`); on sampling steps, update the minimum temperature and the time spent below each
    threshold."""
    for i in prange(lo[0], hi[0]):
        for j in range(lo[1], hi[1]):
            for k in range(lo[2], hi[2]):
                lab = label[i, j, k]
                h = H[i, j, k]
                t = temperature_of(h, props, lab)
                T[i, j, k] = t
                P[i, j, k] = kirchhoff_of(t, props, lab)
                wall_h = props[lab, WALL_H]
                K[i, j, k] = 0.5 * wall_h * dx if wall_h > 0.0 else conductivity_of(h, props, lab)
                if sample:
                    if t < min_t[i, j, k]:
                        min_t[i, j, k] = t
                    for m in range(thresholds.shape[0]):
                        if t < thresholds[m]:
                            time_below[m, i, j, k] += dt_sample


@njit(cache=True, inline="always")
def _harmonic(a, b):
    return 2.0 * a * b / (a + b)


@njit(cache=True, inline="always")
def _face_flux(lab, t, kc, pc, lab_n, t_n, k_n, p_n):
    """Heat into a voxel across one face, times dx (W/m): Φ_n − Φ within one tissue, else the harmonic mean
    of k times T_n − T (branch-free, so that the loop vectorises)."""
    same = 1.0 if lab_n == lab else 0.0
    return same * (p_n - pc) + (1.0 - same) * _harmonic(kc, k_n) * (t_n - t)


def _conduction_pass(H, T, K, P, label, props, frozen, dt, dx, lo, hi, ledger_rows):
    """Pass 2: H += dt (∇·k∇T + W (T_a − T) + Q_m) over the box [lo, hi), fixed voxels excepted.

    Faces within one tissue carry the difference of the Kirchhoff potentials Φ (module docstring); faces
    between different labels the harmonic mean of the two voxels' conductivities, where a vessel lumen carries
    K = h dx / 2 (set by `state_pass`), which makes that harmonic mean exactly the convective wall (half a
    voxel of tissue in series with the film coefficient h). Faces leaving the grid carry no heat (the
    neighbour index is clamped onto the voxel itself). The loop is branch-free so that it vectorises; the
    heat fixed voxels receive is booked in `ledger_rows` (per row i, W/m³) with perfusion and metabolism.
    """
    n0, n1, n2 = H.shape
    inv_dx2 = 1.0 / (dx * dx)
    for i in prange(lo[0], hi[0]):
        im = max(i - 1, 0)
        ip = min(i + 1, n0 - 1)
        into_fixed = 0.0
        into_lumen = 0.0
        perfused = 0.0
        metabolic = 0.0
        for j in range(lo[1], hi[1]):
            jm = max(j - 1, 0)
            jp = min(j + 1, n1 - 1)
            for k in range(lo[2], hi[2]):
                km = k - 1 if k > 0 else 0
                kp = k + 1 if k < n2 - 1 else n2 - 1
                t = T[i, j, k]
                kc = K[i, j, k]
                pc = P[i, j, k]
                lab = label[i, j, k]
                flux = (_face_flux(lab, t, kc, pc, label[im, j, k], T[im, j, k], K[im, j, k], P[im, j, k])
                        + _face_flux(lab, t, kc, pc, label[ip, j, k], T[ip, j, k], K[ip, j, k], P[ip, j, k])
                        + _face_flux(lab, t, kc, pc, label[i, jm, k], T[i, jm, k], K[i, jm, k], P[i, jm, k])
                        + _face_flux(lab, t, kc, pc, label[i, jp, k], T[i, jp, k], K[i, jp, k], P[i, jp, k])
                        + _face_flux(lab, t, kc, pc, label[i, j, km], T[i, j, km], K[i, j, km], P[i, j, km])
                        + _face_flux(lab, t, kc, pc, label[i, j, kp], T[i, j, kp], K[i, j, kp], P[i, j, kp])
                        ) * inv_dx2
                moving = 1.0 - props[lab, FIXED]
                living = (1.0 - frozen[i, j, k]) * moving
                perfusion = living * props[lab, PERFUSION_W] * (props[lab, ARTERIAL_T] - t)
                heat = living * props[lab, METABOLIC_Q]
                lumen = 1.0 if props[lab, WALL_H] > 0.0 else 0.0
                into_fixed += flux * (1.0 - moving) * (1.0 - lumen)
                into_lumen += flux * lumen
                perfused += perfusion
                metabolic += heat
                h_new = H[i, j, k] + dt * moving * (flux + perfusion + heat)
                H[i, j, k] = h_new
                frozen[i, j, k] = frozen[i, j, k] | (h_new < props[lab, H_LIQUIDUS])
        ledger_rows[i, LEDGER_BOUNDARY] -= into_fixed
        ledger_rows[i, LEDGER_VESSEL] -= into_lumen
        ledger_rows[i, LEDGER_PERFUSION] += perfused
        ledger_rows[i, LEDGER_METABOLIC] += metabolic


def _serial_copy(function):
    """The same Python function under another name, so that Numba's on-disk cache (keyed by name and line)
    keeps its serial compilation apart from the threaded one."""
    name = function.__name__ + "_serial"
    code = function.__code__.replace(co_name=name, co_qualname=name)
    copy = types.FunctionType(code, function.__globals__, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return copy


# Each pass compiled twice: threaded for large boxes, serial for small ones (where a barrier per step costs
# more than the work, above all on a loaded machine).
state_pass = njit(parallel=True, cache=True)(_state_pass)
state_pass_serial = njit(cache=True)(_serial_copy(_state_pass))
conduction_pass = njit(parallel=True, cache=True)(_conduction_pass)
conduction_pass_serial = njit(cache=True)(_serial_copy(_conduction_pass))


@njit(cache=True)
def box_boundary_flux(T, K, P, label, lo, hi, dx):
    """Heat flow (W/m³ summed over voxels) into the box [lo, hi) from the voxels just outside it, by the
    face rule of `conduction_pass`."""
    total = 0.0
    n0, n1, n2 = T.shape
    for side in range(2):
        i, o = (lo[0], lo[0] - 1) if side == 0 else (hi[0] - 1, hi[0])
        if 0 <= o < n0:
            for j in range(lo[1], hi[1]):
                for k in range(lo[2], hi[2]):
                    total += _face_flux(label[i, j, k], T[i, j, k], K[i, j, k], P[i, j, k],
                                        label[o, j, k], T[o, j, k], K[o, j, k], P[o, j, k])
        j, o = (lo[1], lo[1] - 1) if side == 0 else (hi[1] - 1, hi[1])
        if 0 <= o < n1:
            for i in range(lo[0], hi[0]):
                for k in range(lo[2], hi[2]):
                    total += _face_flux(label[i, j, k], T[i, j, k], K[i, j, k], P[i, j, k],
                                        label[i, o, k], T[i, o, k], K[i, o, k], P[i, o, k])
        k, o = (lo[2], lo[2] - 1) if side == 0 else (hi[2] - 1, hi[2])
        if 0 <= o < n2:
            for i in range(lo[0], hi[0]):
                for j in range(lo[1], hi[1]):
                    total += _face_flux(label[i, j, k], T[i, j, k], K[i, j, k], P[i, j, k],
                                        label[i, j, o], T[i, j, o], K[i, j, o], P[i, j, o])
    return total / (dx * dx)


@njit(cache=True)
def probe_pass(H, label, props, dt, voxel_volume, ptr, flat_index, weight, effective_length, mode,
               conductance, surface_t, power):
    """Apply each probe's sink, spread over its voxels by `weight` (m, summing to `effective_length`).

    In surface-temperature mode the sink per unit length is q = G (T̄ − T_p), with T̄ the weighted mean
    temperature of the probe's voxels after this step's sink (backward Euler in q, so any G is stable);
    in power mode q is given. Returns the heat removed (J).
    """
    hf = H.reshape(-1)
    lf = label.reshape(-1)
    removed = 0.0
    for p in range(ptr.shape[0] - 1):
        if mode[p] == PROBE_OFF:
            continue
        a, b = ptr[p], ptr[p + 1]
        if mode[p] == PROBE_POWER:
            q = power[p]
        else:
            mean_t = 0.0
            stiffness = 0.0
            for n in range(a, b):
                idx = flat_index[n]
                lab = lf[idx]
                h = hf[idx]
                mean_t += weight[n] * temperature_of(h, props, lab)
                stiffness += weight[n] * weight[n] / (voxel_volume * heat_capacity_of(h, props, lab))
            mean_t /= effective_length[p]
            stiffness /= effective_length[p]
            q = conductance[p] * (mean_t - surface_t[p]) / (1.0 + conductance[p] * dt * stiffness)
        for n in range(a, b):
            idx = flat_index[n]
            hf[idx] -= dt * q * weight[n] / voxel_volume
        removed += dt * q * effective_length[p]
    return removed


@njit(cache=True)
def advance(H, T, K, P, label, props, frozen, min_t, thresholds, time_below, lo, hi, state_lo, state_hi,
            dt, dx, n_steps, sample_every, step0, ledger_rows, ptr, flat_index, weight, effective_length,
            mode, conductance, surface_t, power):
    """Run `n_steps` explicit steps; returns the heat removed by the probes (J).

    `lo`/`hi` bound the updated box; `state_lo`/`state_hi` the box (one voxel wider) whose temperatures
    the stencil reads. Sampling (minimum temperature, time below thresholds) happens every `sample_every`
    steps counted from the run's start (`step0` steps already done).
    """
    removed = 0.0
    voxel_volume = dx * dx * dx
    for s in range(n_steps):
        sample = (step0 + s) % sample_every == 0
        state_pass(H, label, props, T, K, P, state_lo, state_hi, dx, sample, dt * sample_every, min_t, thresholds,
                   time_below)
        ledger_rows[lo[0], LEDGER_BOUNDARY] += box_boundary_flux(T, K, P, label, lo, hi, dx)
        conduction_pass(H, T, K, P, label, props, frozen, dt, dx, lo, hi, ledger_rows)
        removed += probe_pass(H, label, props, dt, voxel_volume, ptr, flat_index, weight, effective_length,
                              mode, conductance, surface_t, power)
    return removed


@njit(cache=True)
def advance_serial(H, T, K, P, label, props, frozen, min_t, thresholds, time_below, lo, hi, state_lo, state_hi,
                   dt, dx, n_steps, sample_every, step0, ledger_rows, ptr, flat_index, weight, effective_length,
                   mode, conductance, surface_t, power):
    """`advance` with serial passes, for small boxes."""
    removed = 0.0
    voxel_volume = dx * dx * dx
    for s in range(n_steps):
        sample = (step0 + s) % sample_every == 0
        state_pass_serial(H, label, props, T, K, P, state_lo, state_hi, dx, sample, dt * sample_every, min_t,
                          thresholds, time_below)
        ledger_rows[lo[0], LEDGER_BOUNDARY] += box_boundary_flux(T, K, P, label, lo, hi, dx)
        conduction_pass_serial(H, T, K, P, label, props, frozen, dt, dx, lo, hi, ledger_rows)
        removed += probe_pass(H, label, props, dt, voxel_volume, ptr, flat_index, weight, effective_length,
                              mode, conductance, surface_t, power)
    return removed
