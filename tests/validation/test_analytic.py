"""The exact solutions of `cryoplan.thermal.analytic` checked against properties they must
have and that their code does not use: the differential equation and the Stefan condition by finite
differences, the energy balance by quadrature, limit cases with classical closed forms, and the steady
radii against a numerical shooting solution of the boundary-value problem (scipy `solve_ivp` + `brentq`).
Parameters are drawn at random (seeded) within physical ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq
from scipy.special import erf
from support.validation import random_frozen_tissue

from cryoplan.thermal import TISSUES, analytic

DRAWS = 4


def central(f, x: float, h: float) -> float:
    return (f(x + h) - f(x - h)) / (2.0 * h)


def second(f, x: float, h: float) -> float:
    return (f(x + h) - 2.0 * f(x) + f(x - h)) / (h * h)


def one_sided(f, x: float, h: float, value_at_x: float) -> float:
    """Second-order one-sided derivative at x from the side of h's sign, with f(x) given (the limit there)."""
    return (-3.0 * value_at_x + 4.0 * f(x + h) - f(x + 2.0 * h)) / (2.0 * h)


def assert_stefan_condition(tissue, field, exact, seconds: float) -> None:
    """The jump of the conducted flux across the front releases L_v per volume the front sweeps."""
    front, t_m = exact.front_m(seconds), tissue.liquidus_c
    h = 1e-4 * front
    jump = tissue.conductivity_frozen_w_mk * one_sided(
        field, front, -h, t_m
    ) - tissue.conductivity_unfrozen_w_mk * one_sided(field, front, h, t_m)
    speed = central(exact.front_m, seconds, 1e-4 * seconds)
    assert jump == pytest.approx(tissue.latent_heat_j_m3 * speed, rel=1e-6)


def neumann_problem(rng):
    tissue = random_frozen_tissue(rng, single_temperature=True)
    t_p, t_i = float(rng.uniform(-160.0, -100.0)), float(rng.uniform(30.0, 40.0))
    exact = analytic.NeumannSolution(
        tissue.conductivity_frozen_w_mk,
        tissue.heat_capacity_frozen_j_m3k,
        tissue.conductivity_unfrozen_w_mk,
        tissue.heat_capacity_unfrozen_j_m3k,
        tissue.latent_heat_j_m3,
        tissue.liquidus_c,
        t_p,
        t_i,
    )
    return tissue, t_p, t_i, float(rng.uniform(60.0, 1800.0)), exact


def test_neumann_solves_the_heat_equation_and_the_stefan_condition(rng):
    for _ in range(DRAWS):
        tissue, t_p, t_i, seconds, exact = neumann_problem(rng)
        t_m, front = tissue.liquidus_c, exact.front_m(seconds)
        field = lambda x, s=seconds: float(exact.temperature_c(x, s))  # noqa: E731
        # Boundary and far-field values, and T = T_m on both sides of the front.
        assert field(0.0) == pytest.approx(t_p, abs=1e-9)
        assert field(50.0 * front + 50.0 * math.sqrt(exact.alpha_u * seconds)) == pytest.approx(t_i, abs=1e-9)
        assert field(front * (1 - 1e-12)) == pytest.approx(t_m, abs=1e-6)
        assert field(front * (1 + 1e-12)) == pytest.approx(t_m, abs=1e-6)
        # ∂T/∂t = α ∂²T/∂x² inside each phase.
        scale = exact.alpha_s * (t_i - t_p) / front**2
        for x, alpha in (
            (0.3 * front, exact.alpha_s),
            (0.8 * front, exact.alpha_s),
            (1.2 * front, exact.alpha_u),
            (2.0 * front, exact.alpha_u),
        ):
            rate = central(lambda s: float(exact.temperature_c(x, s)), seconds, 1e-4 * seconds)
            assert rate - alpha * second(field, x, 1e-4 * front) == pytest.approx(0.0, abs=1e-5 * scale)
        assert_stefan_condition(tissue, field, exact, seconds)
        # The isotherm positions invert the profile.
        for level in (-40.0, -20.0, 0.5 * (t_p + t_m)):
            assert field(exact.isotherm_position_m(level, seconds)) == pytest.approx(level, abs=1e-9)


def test_neumann_conserves_energy(rng):
    """Heat drawn through the face x = 0 up to t equals the enthalpy the medium lost (quadrature)."""
    for _ in range(DRAWS):
        tissue, t_p, t_i, seconds, exact = neumann_problem(rng)
        front = exact.front_m(seconds)
        h_i = float(tissue.enthalpy_j_m3(t_i))

        def face_flux_w_m2(s: float) -> float:
            field = lambda x: float(exact.temperature_c(x, s))  # noqa: E731
            return tissue.conductivity_frozen_w_mk * one_sided(field, 0.0, 1e-5 * exact.front_m(s), t_p)

        drawn = quad(face_flux_w_m2, 0.0, seconds, limit=200, epsrel=1e-10)[0]
        lost = lambda x: h_i - float(tissue.enthalpy_j_m3(exact.temperature_c(x, seconds)))  # noqa: E731
        # The frozen side in enthalpy below the phase change (T_m itself is the jump).
        frozen = quad(
            lambda x: (
                h_i - tissue.heat_capacity_frozen_j_m3k * (float(exact.temperature_c(x, seconds)) - tissue.liquidus_c)
            ),
            0.0,
            front,
            epsrel=1e-11,
        )[0]
        unfrozen = quad(lost, front, front + 40.0 * math.sqrt(exact.alpha_u * seconds), epsrel=1e-11, limit=200)[0]
        assert frozen + unfrozen == pytest.approx(drawn, rel=1e-6)


def test_neumann_without_latent_heat_or_property_jump_is_the_erf_solution(rng):
    """L_v → 0 with equal phases: the classical T = T_p + (T_i − T_p) erf(x / 2√(α t)) (Carslaw & Jaeger
    §2.4)."""
    for _ in range(DRAWS):
        k, c = float(rng.uniform(0.4, 2.4)), float(rng.uniform(1.5e6, 4.0e6))
        t_m, t_p = float(rng.uniform(-2.0, 0.0)), float(rng.uniform(-160.0, -100.0))
        t_i = float(rng.uniform(30.0, 40.0))
        seconds = float(rng.uniform(60.0, 1800.0))
        exact = analytic.NeumannSolution(k, c, k, c, 1e-3, t_m, t_p, t_i)
        x = np.linspace(0.0, 6.0 * math.sqrt(k / c * seconds), 50)
        classical = t_p + (t_i - t_p) * erf(x / (2.0 * math.sqrt(k / c * seconds)))
        np.testing.assert_allclose(exact.temperature_c(x, seconds), classical, atol=1e-6)


def test_published_check_value_of_lambda():
    """The planar Neumann check value λ ≈ 0.5054 for baseline liver, T_m −1, T_p −140, T_i 37 °C. That figure takes the
    frozen density as 1000 kg/m³ (C_s = 1.8 MJ/m³·K); the baseline's 998 kg/m³ gives λ = 0.50498."""
    liver = TISSUES["liver"].replace(density_frozen_kg_m3=1000.0)
    lam = analytic.neumann_lambda(
        liver.conductivity_frozen_w_mk,
        liver.heat_capacity_frozen_j_m3k,
        liver.conductivity_unfrozen_w_mk,
        liver.heat_capacity_unfrozen_j_m3k,
        liver.latent_heat_j_m3,
        -1.0,
        -140.0,
        37.0,
    )
    assert lam == pytest.approx(0.5054, abs=5e-5)


def line_sink_problem(rng):
    tissue = random_frozen_tissue(rng, single_temperature=True)
    q, t_i, seconds = float(rng.uniform(100.0, 600.0)), float(rng.uniform(30.0, 40.0)), float(rng.uniform(60.0, 1800.0))
    exact = analytic.LineSinkSolution(
        q,
        tissue.conductivity_frozen_w_mk,
        tissue.heat_capacity_frozen_j_m3k,
        tissue.conductivity_unfrozen_w_mk,
        tissue.heat_capacity_unfrozen_j_m3k,
        tissue.latent_heat_j_m3,
        tissue.liquidus_c,
        t_i,
    )
    return tissue, q, t_i, seconds, exact


def test_line_sink_solves_the_heat_equation_and_the_stefan_condition(rng):
    for _ in range(DRAWS):
        tissue, q, t_i, seconds, exact = line_sink_problem(rng)
        t_m, front = tissue.liquidus_c, exact.front_m(seconds)
        field = lambda r, s=seconds: float(exact.temperature_c(r, s))  # noqa: E731
        assert field(front * (1 - 1e-12)) == pytest.approx(t_m, abs=1e-6)
        assert field(front * (1 + 1e-12)) == pytest.approx(t_m, abs=1e-6)
        assert field(100.0 * front + 100.0 * math.sqrt(exact.alpha_u * seconds)) == pytest.approx(t_i, abs=1e-6)
        # The sink: the heat flowing in through a small circle around the axis is Q.
        r = 1e-6 * front
        inflow_w_m = 2.0 * math.pi * r * tissue.conductivity_frozen_w_mk * central(field, r, 1e-3 * r)
        assert inflow_w_m == pytest.approx(q, rel=1e-6)
        # ∂T/∂t = α (∂²T/∂r² + ∂T/∂r / r) inside each phase.
        scale = exact.alpha_s * (t_i - t_m) / front**2
        for r, alpha in (
            (0.3 * front, exact.alpha_s),
            (0.8 * front, exact.alpha_s),
            (1.2 * front, exact.alpha_u),
            (2.0 * front, exact.alpha_u),
        ):
            rate = central(lambda s: float(exact.temperature_c(r, s)), seconds, 1e-4 * seconds)
            laplacian = second(field, r, 1e-4 * front) + central(field, r, 1e-4 * front) / r
            assert rate - alpha * laplacian == pytest.approx(0.0, abs=1e-5 * scale)
        assert_stefan_condition(tissue, field, exact, seconds)
        level = float(rng.uniform(t_m - 30.0, t_m - 1.0))
        assert field(exact.isotherm_radius_m(level, seconds)) == pytest.approx(level, abs=1e-8)


def test_line_sink_conserves_energy(rng):
    """Q t drawn by the sink equals the enthalpy the medium lost, ∫ (H_i − H) 2πr dr (quadrature)."""
    for _ in range(DRAWS):
        tissue, q, t_i, seconds, exact = line_sink_problem(rng)
        front = exact.front_m(seconds)
        h_i = float(tissue.enthalpy_j_m3(t_i))
        frozen = quad(
            lambda r: (
                (h_i - tissue.heat_capacity_frozen_j_m3k * (float(exact.temperature_c(r, seconds)) - tissue.liquidus_c))
                * 2.0
                * math.pi
                * r
            ),
            0.0,
            front,
            epsrel=1e-11,
            limit=200,
        )[0]
        unfrozen = quad(
            lambda r: (h_i - float(tissue.enthalpy_j_m3(exact.temperature_c(r, seconds)))) * 2.0 * math.pi * r,
            front,
            front + 60.0 * math.sqrt(exact.alpha_u * seconds),
            epsrel=1e-11,
            limit=200,
        )[0]
        assert frozen + unfrozen == pytest.approx(q * seconds, rel=1e-6)


def shooting_solution(tissue, probe_radius_m: float, probe_temp_c: float, dimension: int):
    """The steady freeze around a probe held at T_p on radius r_p (dimension 2: a long cylinder, 3: a sphere)
    solved numerically, without the closed forms: with F = r^(d−1) k(T) dT/dr, the unperfused zone
    (T < T_l) has dF/dr = 0 and the perfused one dF/dr = r^(d−1) W (T − T_∞). From T(r_p) = T_p the flow F at
    the probe is found by bisection so that T tends to T_∞ far away (the growing mode vanishes).

    Returns the radius of the liquidus and a dense solution r → T on [r_p, ∞) (as far as it was integrated).
    """
    n = dimension - 1
    w, k_u = tissue.perfusion_w_m3k, tissue.conductivity_unfrozen_w_mk
    t_l, t_inf = tissue.liquidus_c, tissue.steady_temperature_c
    decay_m = math.sqrt(k_u / w)

    def frozen(r, y):
        return [y[1] / (r**n * float(tissue.conductivity_w_mk(min(y[0], t_l)))), 0.0]

    def perfused(r, y):
        return [y[1] / (r**n * k_u), r**n * w * (y[0] - t_inf)]

    def thawed(r, y):
        return y[0] - t_l

    thawed.terminal, thawed.direction = True, 1

    def run(flow):
        inner = solve_ivp(
            frozen,
            (probe_radius_m, 1.0),
            [probe_temp_c, flow],
            method="DOP853",
            events=thawed,
            rtol=1e-12,
            atol=[1e-12, 1e-16],
            dense_output=True,
        )
        if not inner.t_events[0].size:
            return None, inner, None
        radius = float(inner.t_events[0][0])
        outer = solve_ivp(
            perfused,
            (radius, radius + 15.0 * decay_m),
            [t_l, flow],
            method="DOP853",
            rtol=1e-12,
            atol=[1e-12, 1e-16],
            dense_output=True,
        )
        return radius, inner, outer

    def far_excess(flow):
        radius, _, outer = run(flow)
        return -(t_inf - t_l) if radius is None else float(outer.y[0, -1] - t_inf)

    # Bracket from the frozen zone's conduction resistance for a front between 1.001 r_p and 1 m.
    phi_l = float(tissue.kirchhoff_w_m(t_l, probe_temp_c))
    resistance = (lambda r: math.log(r / probe_radius_m)) if n == 1 else (lambda r: 1 / probe_radius_m - 1 / r)
    flow = brentq(
        far_excess, phi_l / resistance(1.0), phi_l / resistance(1.001 * probe_radius_m), xtol=1e-14, rtol=1e-14
    )
    radius, inner, outer = run(flow)

    def temperature_c(r):
        return float(inner.sol(r)[0]) if r <= radius else float(outer.sol(r)[0])

    return radius, temperature_c


def perfused_tissue(rng, single_temperature: bool):
    perfusion = float(np.exp(rng.uniform(np.log(2e-3), np.log(3e-2))))  # 1/s, around physiological liver
    return random_frozen_tissue(rng, single_temperature=single_temperature, perfusion_1_s=perfusion).replace(
        metabolic_heat_w_m3=float(rng.uniform(0.0, 4200.0))
    )


@pytest.mark.parametrize("mushy", [False, True])
def test_perfused_cylinder_matches_a_shooting_solution(rng, mushy):
    for _ in range(DRAWS):
        tissue = perfused_tissue(rng, single_temperature=not mushy)
        r_p, t_p = float(rng.uniform(0.5e-3, 1.5e-3)), float(rng.uniform(-160.0, -100.0))
        radius, shot = shooting_solution(tissue, r_p, t_p, dimension=2)
        assert analytic.perfused_cylinder_radius_m(tissue, r_p, t_p) == pytest.approx(radius, rel=1e-6)
        for r in np.geomspace(r_p, 3.0 * radius, 12)[1:]:
            exact_c = float(analytic.perfused_cylinder_temperature_c(tissue, r_p, t_p, r))
            assert exact_c == pytest.approx(shot(r), abs=1e-3)
        for level in (-40.0, -20.0):
            r = analytic.perfused_cylinder_isotherm_m(tissue, r_p, t_p, level)
            assert shot(r) == pytest.approx(level, abs=1e-6)


def test_spherical_steady_radius_matches_a_shooting_solution(rng):
    for _ in range(DRAWS):
        tissue = perfused_tissue(rng, single_temperature=True)
        r_p, t_p = float(rng.uniform(0.5e-3, 1.5e-3)), float(rng.uniform(-160.0, -100.0))
        radius, _ = shooting_solution(tissue, r_p, t_p, dimension=3)
        assert analytic.spherical_steady_radius_m(tissue, r_p, t_p) == pytest.approx(radius, rel=1e-6)


def test_spherical_steady_radius_without_perfusion_is_the_conduction_limit(rng):
    """W = 0: the frozen shell's conductance equals the unfrozen exterior's, 4π k_s (T_m − T_p)/(1/r_p − 1/R)
    = 4π k_u R (T_a − T_m), so R = r_p (1 + k_s (T_m − T_p) / (k_u (T_a − T_m)))."""
    for _ in range(DRAWS):
        tissue = random_frozen_tissue(rng, single_temperature=True).replace(
            arterial_temperature_c=float(rng.uniform(30.0, 40.0))
        )
        r_p, t_p = float(rng.uniform(0.5e-3, 1.5e-3)), float(rng.uniform(-160.0, -100.0))
        t_m = tissue.liquidus_c
        expected = r_p * (
            1.0
            + tissue.conductivity_frozen_w_mk
            * (t_m - t_p)
            / (tissue.conductivity_unfrozen_w_mk * (tissue.arterial_temperature_c - t_m))
        )
        assert analytic.spherical_steady_radius_m(tissue, r_p, t_p) == pytest.approx(expected, rel=1e-9)
