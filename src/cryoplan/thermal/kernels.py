"""Numba kernels of the enthalpy scheme for the Pennes equation with phase change (7-point stencil),
advanced in time by Runge–Kutta–Legendre super-time-stepping.

State: volumetric enthalpy H (float32, J/m³, zero at each tissue's solidus) per voxel, its Kirchhoff potential
Φ(H) = ∫ k dT (float32, W/m), a flag marking tissue that has frozen (perfusion and metabolism stay off
there), and a label per voxel indexing a row of the property table `props` (columns below).

Space. The operator is L(H) = ∇²Φ(H) + W (T_a − T(H)) + Q_m (Elliott 1987). Between two voxels of one
tissue the face carries the difference of their potentials, so a face that straddles the phase change
conducts with the mean of k over the temperatures it spans: ice up to the front, unfrozen tissue beyond it.
(A harmonic mean of the two voxels' k there treated the half voxel of ice next to the front as unfrozen
tissue, and left the steady frozen radius around a probe in perfused tissue with a single phase-change
temperature 0.46–0.96 mm short on a 0.5 mm grid; 0.11–0.23 mm short with Φ.) The dense pass (`stage_pass`)
is therefore the plain 7-point Laplacian of Φ. Faces between different labels (tissue boundaries, vessel
walls, voxels held at a fixed temperature) are few and never change: a sparse pass (`interface_pass`) over
the voxels that have one replaces Φ_n − Φ there by the harmonic mean of k times T_n − T (Patankar §4.2),
where a vessel lumen carries k = h dx/2, which makes that harmonic mean exactly the convective wall (half a
voxel of tissue in series with the film coefficient h).

Time. A super step of length τ is s stages of the first-order Runge–Kutta–Legendre method (RKL1):

    Y₀ = Hⁿ,  Y₁ = Y₀ + μ̃₁ τ L(Y₀),  Y_j = μ_j Y_{j−1} + ν_j Y_{j−2} + μ̃_j τ L(Y_{j−1}),  Hⁿ⁺¹ = Y_s,
    μ_j = (2j − 1)/j,  ν_j = (1 − j)/j,  μ̃_j = μ_j w₁,  w₁ = 2/(s² + s),

stable for τ up to (s² + s)/2 forward-Euler limits dx²/(6 α_max); s = 1 is the explicit enthalpy method
(Voller & Swaminathan 1991). A super step of s stages thus costs s stencil passes where forward Euler needs
(s² + s)/2. The probes' sinks are part of L; their coupling adds its relaxation rate to the stencil's in
the stability limit (`probe_rates`).

References
----------
C. D. Meyer, D. S. Balsara, T. D. Aslam, J Comput Phys 2014;257:594 (RKL1 and RKL2 super-time-stepping).
V. R. Voller, C. R. Swaminathan, Numer Heat Transfer B 1991;19:175 (explicit enthalpy method).
C. M. Elliott, IMA J Numer Anal 1987;7:61 (the enthalpy method in the form ∂H/∂t = ΔΦ).
S. V. Patankar, Numerical Heat Transfer and Fluid Flow, 1980, §4.2 (harmonic-mean face conductivity).
H. H. Pennes, J Appl Physiol 1948;1:93.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Columns of the property table (one row per label, float64).
C_FROZEN, C_UNFROZEN, K_FROZEN, K_UNFROZEN, T_SOLIDUS, T_LIQUIDUS, H_LIQUIDUS = 0, 1, 2, 3, 4, 5, 6
PERFUSION_W, ARTERIAL_T, METABOLIC_Q, FIXED, WALL_H = 7, 8, 9, 10, 11
N_PROPS = 12

# Columns of the stencil table (float32, derived from the property table by `stencil_table`): what the dense
# pass needs to turn H into T and Φ without branches.
S_T_SOLIDUS, S_INV_C_FROZEN, S_MUSHY_SLOPE, S_H_LIQUIDUS, S_INV_C_UNFROZEN = 0, 1, 2, 3, 4
S_K_FROZEN, S_MUSHY_CURVATURE, S_K_UNFROZEN, S_PERFUSION_RATE, S_PERFUSION_AT_ZERO, S_METABOLIC_Q, S_MOVING = (
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)
N_STENCIL = 12

# Columns of the energy ledger (W/m³ summed over voxels, times seconds; the solver multiplies by the voxel
# volume).
LEDGER_BOUNDARY, LEDGER_VESSEL, LEDGER_PERFUSION, LEDGER_METABOLIC, LEDGER_PROBES = 0, 1, 2, 3, 4
N_LEDGER = 5

# Probe modes during a phase.
PROBE_OFF, PROBE_SURFACE_TEMPERATURE, PROBE_POWER = 0, 1, 2


def stencil_table(props: np.ndarray) -> np.ndarray:
    """The float32 stencil table of a property table: T(H) and Φ(H) as sums of three clipped linear parts,

    T = T_s + min(H, 0)/C_s + x + max(H − H_l, 0)/C_u,   x = clip(H, 0, H_l) (T_l − T_s)/H_l,
    Φ = k_s min(H, 0)/C_s + k_s x + ½ (k_u − k_s) x²/(T_l − T_s) + k_u max(H − H_l, 0)/C_u,

    which is `temperature_of` and `kirchhoff_of` (a single phase-change temperature has x = 0). Perfusion acts
    only in tissue that has never frozen, where H ≥ H_l and T is linear in H: W (T_a − T) = P₀ − W H/C_u with
    P₀ = W (T_a − T_l + H_l/C_u)."""
    table = np.zeros((props.shape[0], N_STENCIL), dtype=np.float64)
    span = props[:, T_LIQUIDUS] - props[:, T_SOLIDUS]
    h_l = props[:, H_LIQUIDUS]
    table[:, S_T_SOLIDUS] = props[:, T_SOLIDUS]
    table[:, S_INV_C_FROZEN] = 1.0 / props[:, C_FROZEN]
    table[:, S_MUSHY_SLOPE] = np.where(h_l > 0, span / np.where(h_l > 0, h_l, 1.0), 0.0)
    table[:, S_H_LIQUIDUS] = h_l
    table[:, S_INV_C_UNFROZEN] = 1.0 / props[:, C_UNFROZEN]
    table[:, S_K_FROZEN] = props[:, K_FROZEN]
    table[:, S_MUSHY_CURVATURE] = np.where(
        span > 0, 0.5 * (props[:, K_UNFROZEN] - props[:, K_FROZEN]) / np.where(span > 0, span, 1.0), 0.0
    )
    table[:, S_K_UNFROZEN] = props[:, K_UNFROZEN]
    table[:, S_PERFUSION_RATE] = props[:, PERFUSION_W] / props[:, C_UNFROZEN]
    table[:, S_PERFUSION_AT_ZERO] = props[:, PERFUSION_W] * (
        props[:, ARTERIAL_T] - props[:, T_LIQUIDUS] + h_l / props[:, C_UNFROZEN]
    )
    table[:, S_METABOLIC_Q] = props[:, METABOLIC_Q]
    table[:, S_MOVING] = 1.0 - props[:, FIXED]
    return table.astype(np.float32)


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
    """k(H) on faces between different labels: frozen below the solidus, unfrozen above the liquidus, linear
    in the liquid fraction between (at a single phase-change temperature a partly frozen voxel holds the front
    and conducts as ice); a vessel lumen gives k = h_wall dx/2 (see the module docstring)."""
    h_l = props[lab, H_LIQUIDUS]
    if h <= 0.0:
        return props[lab, K_FROZEN]
    if h >= h_l:
        return props[lab, K_UNFROZEN]
    if props[lab, T_LIQUIDUS] == props[lab, T_SOLIDUS]:
        return props[lab, K_FROZEN]
    return props[lab, K_FROZEN] + h / h_l * (props[lab, K_UNFROZEN] - props[lab, K_FROZEN])


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


@njit(cache=True)
def _parts(h, st, lab):
    """(T, Φ) of enthalpy h by the stencil table (`stencil_table`)."""
    frozen = min(h, np.float32(0.0)) * st[lab, S_INV_C_FROZEN]
    x = min(max(h, np.float32(0.0)), st[lab, S_H_LIQUIDUS]) * st[lab, S_MUSHY_SLOPE]
    unfrozen = max(h - st[lab, S_H_LIQUIDUS], np.float32(0.0)) * st[lab, S_INV_C_UNFROZEN]
    t = st[lab, S_T_SOLIDUS] + frozen + x + unfrozen
    phi = (
        st[lab, S_K_FROZEN] * frozen
        + (st[lab, S_K_FROZEN] + st[lab, S_MUSHY_CURVATURE] * x) * x
        + st[lab, S_K_UNFROZEN] * unfrozen
    )
    return t, phi


@njit(cache=True)
def kirchhoff_potential(h, st, lab):
    """Φ(H) (W/m), zero at the solidus; `Tissue.kirchhoff_w_m` of T(H), physics.md §5.2."""
    return _parts(h, st, lab)[1]


@njit(cache=True, parallel=True)
def state_fields(H, label, st, temperature, potential):
    """T and Φ of every voxel."""
    n0, n1, n2 = H.shape
    for i in prange(n0):
        for j in range(n1):
            for k in range(n2):
                temperature[i, j, k], potential[i, j, k] = _parts(H[i, j, k], st, label[i, j, k])


@njit(cache=True, inline="always")
def _stage_update(h, h_older, laplacian, frozen, st, lab, nu, mu_tau, inv_dx2):
    """One voxel of `stage_pass`: (new enthalpy, its Φ, perfusion heat, metabolic heat). μ Y_{j−1} + ν Y_{j−2}
    is written Y_{j−1} + ν (Y_{j−2} − Y_{j−1}) (μ + ν = 1), which rounds the small difference of two
    stages rather than two large enthalpies, and leaves a fixed voxel's enthalpy exactly as it is."""
    moving = st[lab, S_MOVING]
    living = (np.float32(1.0) - np.float32(frozen)) * moving
    perfusion = living * (st[lab, S_PERFUSION_AT_ZERO] - st[lab, S_PERFUSION_RATE] * h)
    heat = living * st[lab, S_METABOLIC_Q]
    h_new = h + nu * (h_older - h) + mu_tau * (moving * laplacian * inv_dx2 + perfusion + heat)
    return h_new, kirchhoff_potential(h_new, st, lab), perfusion, heat


@njit(cache=True)
def row_labels(label):
    """Per (i, j), the label of the whole row along k if it has one label, else −1: `stage_pass` then takes
    that row's label once instead of reading it per voxel."""
    n0, n1, n2 = label.shape
    rows = np.full((n0, n1), -1, dtype=np.int16)
    for i in range(n0):
        for j in range(n1):
            first = label[i, j, 0]
            uniform = True
            for k in range(1, n2):
                if label[i, j, k] != first:
                    uniform = False
                    break
            if uniform:
                rows[i, j] = first
    return rows


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def stage_pass(src, phi_src, older, dst, phi_dst, label, rows, st, frozen, nu, mu_tau, inv_dx2, lo, hi, ledger_rows):
    """The dense part of one RKL stage over the box [lo, hi): dst = μ src + ν older + μ̃τ L(src), with L's
    conduction the Laplacian of Φ (`phi_src`), and phi_dst = Φ(dst). Fixed voxels keep their enthalpy.
    Faces leaving the grid carry no heat (the neighbour index is clamped onto the voxel itself). Perfusion
    and metabolic heat are booked per row i in `ledger_rows` (W/m³). `rows` is `row_labels(label)`."""
    n0, n1, n2 = src.shape
    for i in prange(lo[0], hi[0]):
        im = max(i - 1, 0)
        ip = min(i + 1, n0 - 1)
        perfused = 0.0
        metabolic = 0.0
        for j in range(lo[1], hi[1]):
            jm = max(j - 1, 0)
            jp = min(j + 1, n1 - 1)
            centre, west, east = phi_src[i, j], phi_src[im, j], phi_src[ip, j]
            south, north = phi_src[i, jm], phi_src[i, jp]
            h_row, older_row, frozen_row = src[i, j], older[i, j], frozen[i, j]
            out, phi_out = dst[i, j], phi_dst[i, j]
            uniform = rows[i, j]
            for k in range(lo[2], hi[2]):
                km = k - 1 if k > 0 else 0
                kp = k + 1 if k < n2 - 1 else n2 - 1
                lab = uniform if uniform >= 0 else label[i, j, k]
                laplacian = (
                    west[k] + east[k] + south[k] + north[k] + centre[km] + centre[kp] - np.float32(6.0) * centre[k]
                )
                h_new, phi_new, perfusion, heat = _stage_update(
                    h_row[k], older_row[k], laplacian, frozen_row[k], st, lab, nu, mu_tau, inv_dx2
                )
                out[k] = h_new
                phi_out[k] = phi_new
                perfused += perfusion
                metabolic += heat
        ledger_rows[i, LEDGER_PERFUSION] += perfused
        ledger_rows[i, LEDGER_METABOLIC] += metabolic


@njit(cache=True, inline="always")
def _harmonic(a, b):
    return 2.0 * a * b / (a + b)


@njit(cache=True, inline="always")
def _face_conductivity(h, props, lab, dx):
    wall_h = props[lab, WALL_H]
    return 0.5 * wall_h * dx if wall_h > 0.0 else conductivity_of(h, props, lab)


@njit(cache=True, inline="always")
def face_flux(hf, pf, lf, props, a, b, dx):
    """Heat into voxel a from voxel b across their face, times dx (W/m), on flat views of H, Φ and the
    labels: Φ_b − Φ_a within one tissue, else the harmonic mean of the face conductivities times T_b − T_a."""
    la, lb = lf[a], lf[b]
    if la == lb:
        return float(pf[b]) - float(pf[a])
    ha, hb = float(hf[a]), float(hf[b])
    k = _harmonic(_face_conductivity(ha, props, la, dx), _face_conductivity(hb, props, lb, dx))
    return k * (temperature_of(hb, props, lb) - temperature_of(ha, props, la))


@njit(cache=True)
def interface_voxels(label, props):
    """Flat indices of the moving voxels with at least one face neighbour of another label."""
    n0, n1, n2 = label.shape
    found = np.zeros(label.size, dtype=np.bool_)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                lab = label[i, j, k]
                if props[lab, FIXED] != 0.0:
                    continue
                other = (
                    (i > 0 and label[i - 1, j, k] != lab)
                    or (i < n0 - 1 and label[i + 1, j, k] != lab)
                    or (j > 0 and label[i, j - 1, k] != lab)
                    or (j < n1 - 1 and label[i, j + 1, k] != lab)
                    or (k > 0 and label[i, j, k - 1] != lab)
                    or (k < n2 - 1 and label[i, j, k + 1] != lab)
                )
                found[(i * n1 + j) * n2 + k] = other
    return np.flatnonzero(found)


@njit(cache=True)
def _neighbour(a, face, shape):
    """Flat index of the face neighbour `face` (0–5: −i, +i, −j, +j, −k, +k) of voxel a; a itself across
    the grid's edge."""
    n0, n1, n2 = shape
    axis = face // 2
    step = n1 * n2 if axis == 0 else (n2 if axis == 1 else 1)
    index = (a // (n1 * n2)) if axis == 0 else ((a // n2) % n1 if axis == 1 else a % n2)
    size = n0 if axis == 0 else (n1 if axis == 1 else n2)
    if face % 2 == 0:
        return a - step if index > 0 else a
    return a + step if index < size - 1 else a


@njit(cache=True)
def _interface_correction(hf, pf, lf, shape, props, a, dx):
    """At interface voxel a: the harmonic-mean flux minus the Φ difference summed over its faces to other
    labels (times dx, W/m), and the flux it receives from fixed voxels and from vessel lumens."""
    lab = lf[a]
    correction = 0.0
    from_fixed = 0.0
    from_lumen = 0.0
    for face in range(6):
        b = _neighbour(a, face, shape)
        lb = lf[b]
        if lb != lab:
            flux = face_flux(hf, pf, lf, props, a, b, dx)
            correction += flux - (float(pf[b]) - float(pf[a]))
            if props[lb, FIXED] != 0.0:
                if props[lb, WALL_H] > 0.0:
                    from_lumen += flux
                else:
                    from_fixed += flux
    return correction, from_fixed, from_lumen


@njit(cache=True, parallel=True)
def interface_pass(src, phi_src, dst, phi_dst, label, props, st, interface, mu_tau, dx, lo, hi):
    """The sparse part of one RKL stage: at each interface voxel inside the box, replace the Φ difference
    `stage_pass` used on faces to another label by the harmonic-mean flux (module docstring), in dst and
    phi_dst. Returns the heat (W/m³ summed) the moving voxels received from fixed ones: (boundary, vessels)."""
    n0, n1, n2 = src.shape
    sf = src.reshape(-1)
    psf = phi_src.reshape(-1)
    df = dst.reshape(-1)
    pdf = phi_dst.reshape(-1)
    lf = label.reshape(-1)
    inv_dx2 = 1.0 / (dx * dx)
    from_fixed = 0.0
    from_lumen = 0.0
    for n in prange(interface.shape[0]):
        a = interface[n]
        i = a // (n1 * n2)
        j = (a // n2) % n1
        k = a % n2
        if lo[0] <= i < hi[0] and lo[1] <= j < hi[1] and lo[2] <= k < hi[2]:
            correction, fixed_here, lumen_here = _interface_correction(sf, psf, lf, src.shape, props, a, dx)
            h_new = df[a] + np.float32(mu_tau * correction * inv_dx2)
            df[a] = h_new
            pdf[a] = kirchhoff_potential(h_new, st, lf[a])
            from_fixed += fixed_here
            from_lumen += lumen_here
    return from_fixed * inv_dx2, from_lumen * inv_dx2


@njit(cache=True)
def box_boundary_flux(H, phi, label, props, lo, hi, dx):
    """Heat flow (W/m³ summed over voxels) into the box [lo, hi) from the voxels just outside it."""
    n0, n1, n2 = H.shape
    hf, pf, lf = H.reshape(-1), phi.reshape(-1), label.reshape(-1)
    strides = (n1 * n2, n2, 1)
    total = 0.0
    for axis in range(3):
        u, v = (1, 2) if axis == 0 else ((0, 2) if axis == 1 else (0, 1))
        for side in range(2):
            inside = lo[axis] if side == 0 else hi[axis] - 1
            outside = inside - 1 if side == 0 else inside + 1
            if outside < 0 or outside >= H.shape[axis]:
                continue
            for p in range(lo[u], hi[u]):
                for q in range(lo[v], hi[v]):
                    a = inside * strides[axis] + p * strides[u] + q * strides[v]
                    total += face_flux(hf, pf, lf, props, a, a + (outside - inside) * strides[axis], dx)
    return total / (dx * dx)


@njit(cache=True)
def probe_pass(
    src,
    dst,
    phi_dst,
    label,
    props,
    st,
    mu_tau,
    voxel_volume,
    ptr,
    flat_index,
    weight,
    effective_length,
    mode,
    conductance,
    surface_t,
    power,
):
    """The probes' part of one RKL stage: each probe's sink q per unit length, spread over its voxels by
    `weight` (m, summing to `effective_length`), taken from dst (Φ refreshed there).

    In surface-temperature mode q = G (T̄ − T_p), with T̄ the weighted mean temperature of the probe's voxels
    in src; in power mode q is given. Returns the heat flow into the tissue divided by the voxel volume
    (W/m³ summed over voxels, as the other ledger terms; negative while freezing).
    """
    sf = src.reshape(-1)
    df = dst.reshape(-1)
    pf = phi_dst.reshape(-1)
    lf = label.reshape(-1)
    into_tissue = 0.0
    for p in range(ptr.shape[0] - 1):
        if mode[p] == PROBE_OFF:
            continue
        a, b = ptr[p], ptr[p + 1]
        if mode[p] == PROBE_POWER:
            q = power[p]
        else:
            mean_t = 0.0
            for n in range(a, b):
                idx = flat_index[n]
                mean_t += weight[n] * temperature_of(sf[idx], props, lf[idx])
            q = conductance[p] * (mean_t / effective_length[p] - surface_t[p])
        for n in range(a, b):
            idx = flat_index[n]
            df[idx] -= np.float32(mu_tau * q * weight[n] / voxel_volume)
            pf[idx] = kirchhoff_potential(df[idx], st, lf[idx])
        into_tissue -= q * effective_length[p]
    return into_tissue / voxel_volume


def probe_rates(
    props: np.ndarray, voxel_volume: float, ptr, flat_index, label, weight, effective_length, conductance
) -> np.ndarray:
    """Per probe, the rate (1/s) at which its coupling relaxes the mean temperature of its voxels:
    G Σw²/(V C L) with the smallest heat capacity of its voxels' tissues. It adds to the stencil's 12 α/dx²
    in the explicit stability limit."""
    rates = np.zeros(len(ptr) - 1)
    for p in range(len(ptr) - 1):
        idx = flat_index[ptr[p] : ptr[p + 1]]
        if idx.size == 0:
            continue
        rows = props[label.reshape(-1)[idx]]
        capacity = np.minimum(rows[:, C_FROZEN], rows[:, C_UNFROZEN])
        w = weight[ptr[p] : ptr[p + 1]]
        rates[p] = conductance[p] * np.sum(w * w / (voxel_volume * capacity)) / effective_length[p]
    return rates


@njit(cache=True, parallel=True)
def end_pass(H, label, st, frozen, lo, hi, sample, dt_sample, min_t, thresholds, time_below):
    """After a super step, over the box [lo, hi): mark tissue that has frozen, and on sampling steps update
    the minimum temperature and add `dt_sample` to the time below each threshold."""
    for i in prange(lo[0], hi[0]):
        for j in range(lo[1], hi[1]):
            for k in range(lo[2], hi[2]):
                lab = label[i, j, k]
                h = H[i, j, k]
                frozen[i, j, k] |= h < st[lab, S_H_LIQUIDUS]
                if sample:
                    t = _parts(h, st, lab)[0]
                    if t < min_t[i, j, k]:
                        min_t[i, j, k] = t
                    for m in range(thresholds.shape[0]):
                        if t < thresholds[m]:
                            time_below[m, i, j, k] += dt_sample


@njit(cache=True)
def advance(
    Hs,
    phis,
    current,
    label,
    rows,
    props,
    st,
    frozen,
    min_t,
    thresholds,
    time_below,
    lo,
    hi,
    interface,
    dx,
    tau,
    stages,
    n_steps,
    sample_every,
    ledger,
    ledger_rows,
    ptr,
    flat_index,
    weight,
    effective_length,
    mode,
    conductance,
    surface_t,
    power,
):
    """Run `n_steps` super steps of length τ with `stages` RKL1 stages each (module docstring).

    The enthalpy is ``Hs[current[0]]`` and its potential ``phis[current[1]]``; both indices are updated in
    place. The other buffers are the stages' scratch space; outside the box [lo, hi) every buffer holds the
    same, unchanging values. The energy ledger is accumulated into `ledger` by the same recurrence as H.
    Sampling (minimum temperature, time below thresholds) happens every `sample_every` super steps and after
    the last. Returns the voxel updates done.
    """
    updates = 0
    voxel_volume = dx * dx * dx
    inv_dx2 = np.float32(1.0 / (dx * dx))
    box = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
    w1 = 2.0 / (stages * stages + stages)
    d_prev = np.zeros(N_LEDGER)
    d_older = np.zeros(N_LEDGER)
    d_new = np.zeros(N_LEDGER)
    stage = np.zeros(N_LEDGER)
    since_sample = 0
    for s in range(n_steps):
        prev, older, p_prev = current[0], current[0], current[1]
        d_prev[:] = 0.0
        d_older[:] = 0.0
        for j in range(1, stages + 1):
            mu = (2.0 * j - 1.0) / j
            nu = (1.0 - j) / j
            mu_tau = mu * w1 * tau
            dst = 3 - prev - older if prev != older else (prev + 1) % 3
            p_dst = 1 - p_prev
            ledger_rows[:] = 0.0
            stage[LEDGER_BOUNDARY] = box_boundary_flux(Hs[prev], phis[p_prev], label, props, lo, hi, dx)
            stage_pass(
                Hs[prev],
                phis[p_prev],
                Hs[older],
                Hs[dst],
                phis[p_dst],
                label,
                rows,
                st,
                frozen,
                np.float32(nu),
                np.float32(mu_tau),
                inv_dx2,
                lo,
                hi,
                ledger_rows,
            )
            from_fixed, from_lumen = interface_pass(
                Hs[prev], phis[p_prev], Hs[dst], phis[p_dst], label, props, st, interface, mu_tau, dx, lo, hi
            )
            stage[LEDGER_PROBES] = probe_pass(
                Hs[prev],
                Hs[dst],
                phis[p_dst],
                label,
                props,
                st,
                mu_tau,
                voxel_volume,
                ptr,
                flat_index,
                weight,
                effective_length,
                mode,
                conductance,
                surface_t,
                power,
            )
            stage[LEDGER_BOUNDARY] += from_fixed
            stage[LEDGER_VESSEL] = from_lumen
            stage[LEDGER_PERFUSION] = ledger_rows[:, LEDGER_PERFUSION].sum()
            stage[LEDGER_METABOLIC] = ledger_rows[:, LEDGER_METABOLIC].sum()
            for c in range(N_LEDGER):
                d_new[c] = mu * d_prev[c] + nu * d_older[c] + mu_tau * stage[c]
            d_older[:] = d_prev
            d_prev[:] = d_new
            older, prev, p_prev = prev, dst, p_dst
            updates += box
        ledger += d_prev
        since_sample += 1
        sample = since_sample == sample_every or s == n_steps - 1
        end_pass(Hs[prev], label, st, frozen, lo, hi, sample, tau * since_sample, min_t, thresholds, time_below)
        if sample:
            since_sample = 0
        current[0], current[1] = prev, p_prev
    return updates
