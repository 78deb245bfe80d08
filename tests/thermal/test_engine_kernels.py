"""The engine's vectorised passes against plain NumPy statements of what each computes, on random states with
several labels, grid edges inside the box and boxes smaller than the grid."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.thermal import TISSUES, Grid, parse_protocol, simulate
from cryoplan.thermal import kernels as K
from cryoplan.thermal.chart import chart_grid, probe_layout
from cryoplan.thermal.solver import PREVIEW_SUPER_STEP_S, SUPER_STEP_S, _props_row

SHAPE = (9, 11, 13)


def _table() -> np.ndarray:
    """Liver, tumour, a tissue with a single phase-change temperature, and a fixed row (a lumen's wall)."""
    rows = [_props_row(TISSUES["liver"]), _props_row(TISSUES["tumour"]), _props_row(TISSUES["gel"])]
    lumen = _props_row(TISSUES["blood"])
    lumen[K.FIXED], lumen[K.WALL_H] = 1.0, 450.0
    return np.asarray(rows + [lumen])


def _state(rng: np.random.Generator):
    """Labels in runs along k (blocks of random length), enthalpies across frozen, mushy and unfrozen."""
    label = np.zeros(SHAPE, dtype=np.uint8)
    for i in range(SHAPE[0]):
        for j in range(SHAPE[1]):
            k = 0
            while k < SHAPE[2]:
                length = int(rng.integers(1, 6))
                label[i, j, k : k + length] = rng.integers(0, 4)
                k += length
    table = _table()
    h = rng.uniform(-60e6, 1.2, SHAPE) * table[label, K.H_LIQUIDUS] + rng.uniform(-2e7, 2e7, SHAPE)
    return label, table, h.astype(np.float32)


def _numpy_parts(h, st, label):
    """T(H) and Φ(H) of `kernels.stencil_table`'s docstring, in NumPy."""
    c = st[label].astype(np.float64)
    h = h.astype(np.float64)
    frozen = np.minimum(h, 0.0) * c[..., K.S_INV_C_FROZEN]
    x = np.clip(h, 0.0, c[..., K.S_H_LIQUIDUS]) * c[..., K.S_MUSHY_SLOPE]
    unfrozen = np.maximum(h - c[..., K.S_H_LIQUIDUS], 0.0) * c[..., K.S_INV_C_UNFROZEN]
    t = c[..., K.S_T_SOLIDUS] + frozen + x + unfrozen
    phi = (
        c[..., K.S_K_FROZEN] * frozen
        + (c[..., K.S_K_FROZEN] + c[..., K.S_MUSHY_CURVATURE] * x) * x
        + c[..., K.S_K_UNFROZEN] * unfrozen
    )
    return t, phi


NEIGHBOURS = [(axis, step) for axis in range(3) for step in (-1, 1)]


def _shifted(a: np.ndarray, axis: int, step: int) -> np.ndarray:
    """a at the face neighbour (axis, step) of every voxel; a voxel's own value across the grid's edge."""
    padded = np.pad(a, [(1, 1) if d == axis else (0, 0) for d in range(3)], mode="edge")
    return np.take(padded, np.arange(a.shape[axis]) + 1 + step, axis=axis)


def _box_mask(lo, hi) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


BOXES = [((0, 0, 0), SHAPE), ((1, 1, 1), (8, 10, 12)), ((2, 0, 3), (6, 11, 9)), ((4, 5, 6), (5, 6, 7))]


def test_label_runs_rebuild_the_labels():
    label, _, _ = _state(np.random.default_rng(1))
    run_ptr, run_start, run_end, run_label = K.label_runs(label)
    rebuilt = np.full(SHAPE, 255, dtype=np.int64)
    for row in range(SHAPE[0] * SHAPE[1]):
        i, j = divmod(row, SHAPE[1])
        starts = run_start[run_ptr[row] : run_ptr[row + 1]]
        ends = run_end[run_ptr[row] : run_ptr[row + 1]]
        assert starts[0] == 0 and ends[-1] == SHAPE[2] and np.all(starts[1:] == ends[:-1])
        labels = run_label[run_ptr[row] : run_ptr[row + 1]]
        assert np.all(labels[1:] != labels[:-1])  # maximal runs
        for start, end, lab in zip(starts, ends, labels):
            rebuilt[i, j, start:end] = lab
    np.testing.assert_array_equal(rebuilt, label)


def test_interface_faces_are_every_face_of_a_moving_voxel_to_another_label():
    label, table, _ = _state(np.random.default_rng(2))
    voxels, ijk, face_ptr, face_other, face_side = K.interface_faces(label, table)
    found = {}
    for n, a in enumerate(voxels):
        assert np.ravel_multi_index(tuple(ijk[n]), SHAPE) == a
        found[int(a)] = sorted(zip(face_side[face_ptr[n] : face_ptr[n + 1]], face_other[face_ptr[n] : face_ptr[n + 1]]))
    expected = {}
    moving = table[label, K.FIXED] == 0
    for side, (axis, step) in enumerate(NEIGHBOURS):
        index = np.indices(SHAPE)
        index[axis] += step
        inside = (index[axis] >= 0) & (index[axis] < SHAPE[axis])
        other = np.ravel_multi_index(tuple(np.clip(index[d], 0, SHAPE[d] - 1) for d in range(3)), SHAPE)
        foreign = inside & moving & (label.reshape(-1)[other] != label)
        for a in np.flatnonzero(foreign):
            expected.setdefault(int(a), []).append((side, int(other.reshape(-1)[a])))
    assert found == {a: sorted(faces) for a, faces in expected.items()}


@pytest.mark.parametrize("lo, hi", BOXES)
def test_stage_pass_is_the_rkl_stage_of_the_potential_laplacian(lo, hi):
    rng = np.random.default_rng(3)
    label, table, h = _state(rng)
    st = K.stencil_table(table)
    older = (h + rng.uniform(-1e6, 1e6, SHAPE)).astype(np.float32)
    frozen = (rng.random(SHAPE) < 0.3).astype(np.uint8)
    _, phi = _numpy_parts(h, st, label)
    phi = phi.astype(np.float32)
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    nu, mu_tau, inv_dx2 = np.float32(-0.4), np.float32(0.6), np.float32(1e6)
    dst = np.full(SHAPE, 7.0, np.float32)
    phi_dst = np.full(SHAPE, 7.0, np.float32)
    ledger_rows = np.zeros((SHAPE[0], K.N_LEDGER))
    K.stage_pass(h, phi, older, dst, phi_dst, frozen, K.label_runs(label), st, nu, mu_tau, inv_dx2, lo, hi, ledger_rows)

    c = st[label].astype(np.float64)
    centre = phi.astype(np.float64)
    laplacian = sum(_shifted(centre, axis, step) for axis, step in NEIGHBOURS) - 6.0 * centre
    moving = c[..., K.S_MOVING]
    living = (1.0 - frozen) * moving
    perfusion = living * (c[..., K.S_PERFUSION_AT_ZERO] - c[..., K.S_PERFUSION_RATE] * h)
    heat = living * c[..., K.S_METABOLIC_Q]
    expected = h + nu * (older - h) + mu_tau * (moving * laplacian * inv_dx2 + perfusion + heat)
    box = _box_mask(lo, hi)
    scale = float(np.abs(h).max())
    np.testing.assert_allclose(dst[box], expected[box], rtol=0, atol=2e-6 * scale)
    assert np.all(dst[~box] == 7.0) and np.all(phi_dst[~box] == 7.0)  # nothing written outside the box
    _, phi_expected = _numpy_parts(dst, st, label)
    np.testing.assert_allclose(phi_dst[box], phi_expected[box], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ledger_rows[:, K.LEDGER_PERFUSION].sum(), perfusion[box].sum(), rtol=1e-5)
    np.testing.assert_allclose(ledger_rows[:, K.LEDGER_METABOLIC].sum(), heat[box].sum(), rtol=1e-5)
    # Heat through the box's faces from voxels of the grid outside it, by the potential difference.
    inflow = 0.0
    for axis, step in NEIGHBOURS:
        index = np.indices(SHAPE)[axis] + step
        beyond = (index >= 0) & (index < SHAPE[axis]) & ~_shifted(box, axis, step)
        inflow += np.sum((moving * (_shifted(centre, axis, step) - centre))[box & beyond])
    np.testing.assert_allclose(ledger_rows[:, K.LEDGER_BOUNDARY].sum(), inflow * inv_dx2, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("lo, hi", BOXES[1:])
def test_the_passes_book_the_exact_face_flux_through_the_box(lo, hi):
    """Within the box's faces, `stage_pass` books Φ differences and `interface_pass` corrects the faces between
    labels: together, the flux of `kernels.face_flux` over every face from outside the box into a moving
    voxel, apart from fixed neighbours, which are booked as heat from fixed voxels or lumens."""
    rng = np.random.default_rng(4)
    label, table, h = _state(rng)
    st = K.stencil_table(table)
    _, phi = _numpy_parts(h, st, label)
    phi = phi.astype(np.float32)
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    dx = 1e-3
    frozen = np.zeros(SHAPE, np.uint8)
    dst, phi_dst = h.copy(), phi.copy()
    ledger_rows = np.zeros((SHAPE[0], K.N_LEDGER))
    runs, interface = K.label_runs(label), K.interface_faces(label, table)
    args = (np.float32(0.0), np.float32(1.0), np.float32(1.0 / dx**2), lo, hi, ledger_rows)
    K.stage_pass(h, phi, h, dst, phi_dst, frozen, runs, st, *args)
    from_fixed, from_lumen, across = K.interface_pass(
        h, phi, dst, phi_dst, label, table, st, interface, 1.0, dx, lo, hi
    )
    hf, pf, lf = h.reshape(-1), phi.reshape(-1), label.reshape(-1)
    through_box = fixed_in = lumen_in = 0.0
    box = _box_mask(lo, hi)
    for a in np.flatnonzero(box.reshape(-1) & (table[lf, K.FIXED] == 0)):
        index = np.array(np.unravel_index(a, SHAPE))
        for axis, step in NEIGHBOURS:
            other = index.copy()
            other[axis] += step
            if not 0 <= other[axis] < SHAPE[axis]:
                continue
            b = int(np.ravel_multi_index(tuple(other), SHAPE))
            flux = K.face_flux(hf, pf, lf, table, a, b, dx)
            if table[lf[b], K.FIXED] != 0.0:
                if table[lf[b], K.WALL_H] > 0:
                    lumen_in += flux
                else:
                    fixed_in += flux
            elif not box.reshape(-1)[b]:
                through_box += flux
    boundary = ledger_rows[:, K.LEDGER_BOUNDARY].sum() + across
    assert through_box != 0.0 and lumen_in != 0.0 and across != 0.0  # every kind of face is exercised
    scale = 1.0 / dx**2
    assert boundary == pytest.approx(through_box * scale, rel=1e-6, abs=1e-3)
    assert from_lumen == pytest.approx(lumen_in * scale, rel=1e-9, abs=1e-6)
    assert from_fixed == pytest.approx(fixed_in * scale, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1]])  # the pass finds the warmest threshold itself
@pytest.mark.parametrize("lo, hi", BOXES)
def test_end_pass_marks_frozen_tissue_and_samples(lo, hi, order):
    rng = np.random.default_rng(5)
    label, table, h = _state(rng)
    st = K.stencil_table(table)
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    frozen = (rng.random(SHAPE) < 0.2).astype(np.uint8)
    min_t = rng.uniform(-30, 40, SHAPE).astype(np.float32)
    thresholds = np.array([0.0, -20.0, -40.0])[order]
    time_below = rng.uniform(0, 10, (3, *SHAPE)).astype(np.float32)
    before = frozen.copy(), min_t.copy(), time_below.copy()
    K.end_pass(h, st, frozen, K.label_runs(label), lo, hi, True, 2.5, min_t, thresholds, time_below)
    box = _box_mask(lo, hi)
    t, _ = _numpy_parts(h, st, label)
    t = t.astype(np.float32)
    np.testing.assert_array_equal(frozen[box], before[0][box] | (h < st[label, K.S_H_LIQUIDUS])[box])
    np.testing.assert_allclose(min_t[box], np.minimum(before[1], t)[box], rtol=1e-6, atol=1e-4)
    for m, threshold in enumerate(thresholds):
        expected = before[2][m] + np.where(t < threshold, np.float32(2.5), np.float32(0.0))
        np.testing.assert_array_equal(time_below[m][box], expected[box])
    assert np.array_equal(frozen[~box], before[0][~box]) and np.array_equal(min_t[~box], before[1][~box])


@pytest.mark.parametrize("reach", [1, 2, 5, 40])
def test_changed_extent_finds_the_changes_that_grow_the_box(reach):
    rng = np.random.default_rng(6)
    shape = (30, 28, 26)
    reference = rng.uniform(0, 1e6, shape).astype(np.float32)
    for trial in range(20):
        lo = rng.integers(0, 10, 3)
        hi = lo + rng.integers(1, 16, 3)
        H = reference.copy()
        changed = np.zeros(shape, dtype=bool)
        for _ in range(int(rng.integers(0, 4))):
            index = tuple(rng.integers(lo, hi))
            changed[index] = True
            H[index] += np.float32(10.0)
        H += rng.uniform(-0.4, 0.4, shape).astype(np.float32)  # below the tolerance
        first, last = K.changed_extent(H, reference, np.float32(1.0), lo, hi, reach)
        for axis in range(3):
            present = np.flatnonzero(np.any(changed, axis=tuple(a for a in range(3) if a != axis)))
            # the box grown by `reach` beyond what is found equals the box grown beyond every change
            grown_lo = min(lo[axis], first[axis] - reach)
            grown_hi = max(hi[axis], last[axis] + reach)
            true_lo = min(lo[axis], present[0] - reach) if present.size else lo[axis]
            true_hi = max(hi[axis], present[-1] + 1 + reach) if present.size else hi[axis]
            assert (grown_lo, grown_hi) == (true_lo, true_hi), (trial, axis)


def test_a_preview_takes_longer_super_steps_and_fewer_passes():
    """A 6-min freeze: long enough that the steps after the opening ramp, where the preview saves, dominate."""
    probes = probe_layout("17g-sphere")
    protocol = parse_protocol("freeze:6")
    grid = chart_grid(probes, TISSUES["liver"], protocol, 2.0)
    default = simulate(grid, probes, protocol, tissues=TISSUES["liver"])
    preview = simulate(grid, probes, protocol, tissues=TISSUES["liver"], preview=True)
    assert SUPER_STEP_S < preview.time_step_s <= PREVIEW_SUPER_STEP_S
    assert default.time_step_s <= SUPER_STEP_S
    assert preview.voxel_updates < 0.8 * default.voxel_updates


def test_a_preview_keeps_the_isotherms_of_the_default_steps():
    """A freeze, a thaw and a second freeze (three ramps) on a 2 mm grid: the preview's 0/−20/−40 °C volumes
    within 1.5 % of the default steps' (the tolerance of the default steps against explicit ones). Ramps
    doubling to the preview's steps, or 30 s steps, missed it on this case."""
    probes = probe_layout("17g-sphere")
    protocol = parse_protocol("freeze:4,passive_thaw:2,freeze:4")
    grid = chart_grid(probes, TISSUES["liver"], protocol, 2.0)
    default = simulate(grid, probes, protocol, tissues=TISSUES["liver"])
    preview = simulate(grid, probes, protocol, tissues=TISSUES["liver"], preview=True)
    assert preview.voxel_updates < default.voxel_updates
    for temperature in (0.0, -20.0, -40.0):
        reference = default.isotherm_volume_ml(temperature)
        assert reference > 0.3, temperature  # at least 37 voxels
        assert preview.isotherm_volume_ml(temperature) == pytest.approx(reference, rel=0.015), temperature


def test_a_thin_grid_runs_with_every_edge_in_the_box():
    """A cross-section one voxel thick: the box spans the thin axis whole, edges clamped on both sides."""
    grid = Grid(origin_mm=np.array([-20.0, -20.0, 0.0]), spacing_mm=1.0, shape=(41, 41, 1))
    probe = probe_layout("17g-rod")[0]
    placement = type(probe)(probe.probe_id, np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    result = simulate(grid, [placement], parse_protocol("freeze:2"), tissues=TISSUES["liver"])
    assert result.min_temperature_c.min() < -20.0 and result.min_temperature_c[0, 0, 0] > 30.0
