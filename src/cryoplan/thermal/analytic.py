"""Exact solutions of freezing problems (Neumann, line sink, steady perfused cylinder and sphere), any parameters.

Used by the validation tests and the benchmarks as references. Temperatures in °C, lengths in metres,
times in seconds, properties in SI. Notation: s frozen, u unfrozen, C = ρc, α = k/C, L_v latent heat per
volume, T_m phase-change temperature, T_p surface temperature, T_i initial temperature, W = ω_b ρ_b c_b.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import erf, erfc, erfcx, erfinv, exp1, k0, k1

from cryoplan.thermal.tissue import Tissue


def neumann_lambda(
    k_s: float, c_s: float, k_u: float, c_u: float, latent_j_m3: float, t_m: float, t_p: float, t_i: float
) -> float:
    """λ of the two-phase Neumann solution: the root of
    St_s e^(−λ²)/erf λ − St_u e^(−ν²λ²)/(ν erfc νλ) = λ √π, ν = √(α_s/α_u).

    References
    ----------
    H. S. Carslaw, J. C. Jaeger, Conduction of Heat in Solids, 2nd ed., 1959, §11.2.
    """
    alpha_s, alpha_u = k_s / c_s, k_u / c_u
    nu = math.sqrt(alpha_s / alpha_u)
    st_s = c_s * (t_m - t_p) / latent_j_m3
    st_u = c_u * (t_i - t_m) / latent_j_m3

    def residual(lam: float) -> float:
        return float(
            st_s * math.exp(-lam * lam) / math.erf(lam) - st_u / (nu * erfcx(nu * lam)) - lam * math.sqrt(math.pi)
        )  # e^(−x²)/erfc x = 1/erfcx x

    return float(brentq(residual, 1e-9, 5.0, xtol=1e-14))


class NeumannSolution:
    """Planar freezing of x > 0 (initially T_i) from the face x = 0 held at T_p < T_m, no perfusion.

    Front X(t) = 2 λ √(α_s t); frozen T = T_p + (T_m − T_p) erf(x/2√(α_s t))/erf λ;
    unfrozen T = T_i − (T_i − T_m) erfc(x/2√(α_u t))/erfc(λν).
    """

    def __init__(
        self, k_s: float, c_s: float, k_u: float, c_u: float, latent_j_m3: float, t_m: float, t_p: float, t_i: float
    ) -> None:
        self.k_s, self.c_s, self.k_u, self.c_u = k_s, c_s, k_u, c_u
        self.t_m, self.t_p, self.t_i = t_m, t_p, t_i
        self.alpha_s, self.alpha_u = k_s / c_s, k_u / c_u
        self.nu = math.sqrt(self.alpha_s / self.alpha_u)
        self.lam = neumann_lambda(k_s, c_s, k_u, c_u, latent_j_m3, t_m, t_p, t_i)

    def front_m(self, t_s: float) -> float:
        return 2.0 * self.lam * math.sqrt(self.alpha_s * t_s)

    def temperature_c(self, x_m: ArrayLike, t_s: float) -> NDArray[np.float64]:
        x = np.asarray(x_m, dtype=np.float64)
        frozen = self.t_p + (self.t_m - self.t_p) * erf(x / (2 * math.sqrt(self.alpha_s * t_s))) / math.erf(self.lam)
        unfrozen = self.t_i - (self.t_i - self.t_m) * erfc(x / (2 * math.sqrt(self.alpha_u * t_s))) / math.erfc(
            self.lam * self.nu
        )
        profile: NDArray[np.float64] = np.where(x <= self.front_m(t_s), frozen, unfrozen)
        return profile

    def isotherm_position_m(self, temperature_c: float, t_s: float) -> float:
        """Depth of a frozen-side isotherm T_p < T ≤ T_m (inverting the erf profile)."""

        fraction = (temperature_c - self.t_p) / (self.t_m - self.t_p) * math.erf(self.lam)
        return float(2 * math.sqrt(self.alpha_s * t_s) * erfinv(fraction))


def perfused_cylinder_radius_m(tissue: Tissue, probe_radius_m: float, probe_temp_c: float) -> float:
    """Steady frozen radius R_l (liquidus isotherm) around a long probe at T_p in perfused tissue.

    Frozen zone unperfused, unfrozen zone Pennes. With k(T) and a mushy range the Kirchhoff transform
    Φ(T) = ∫_{T_p}^T k dT keeps it exact:
    Φ(T_l)/(R ln(R/r_p)) = k_u m (T_∞ − T_l) K1(mR)/K0(mR), m = √(W/k_u).

    References
    ----------
    J. C. Rewcastle, G. A. Sandison, et al., Med Phys 1998;25:974 (steady cryoprobe solutions).
    """
    k_u = tissue.conductivity_unfrozen_w_mk
    m = math.sqrt(tissue.perfusion_w_m3k / k_u)
    phi_l = float(tissue.kirchhoff_w_m(tissue.liquidus_c, probe_temp_c))
    t_inf = tissue.steady_temperature_c

    def residual(log_r: float) -> float:
        r = math.exp(log_r)
        return float(
            phi_l / (r * math.log(r / probe_radius_m)) - k_u * m * (t_inf - tissue.liquidus_c) * k1(m * r) / k0(m * r)
        )

    return math.exp(brentq(residual, math.log(probe_radius_m * (1 + 1e-9)), math.log(1.0), xtol=1e-14))


def robin_cylinder_radius_m(
    tissue: Tissue, probe_radius_m: float, cryogen_temp_c: float, heat_transfer_w_m2k: float
) -> tuple[float, float]:
    """Steady frozen radius R_l and probe surface temperature T_s around a long probe cooled through a film:
    the surface exchanges q' = 2π r_p h (T_s − T_c) per metre with a cryogen at T_c.

    The steady flux per metre is the same through the film, the frozen zone and the perfused unfrozen zone:
    q'/2π = r_p h (T_s − T_c) = [Φ(T_l) − Φ(T_s)] / ln(R/r_p) = R k_u m (T_∞ − T_l) K1(mR)/K0(mR). For each R
    the last fixes q', the first T_s; R is the root of the middle equality.

    Returns
    -------
    (radius_m, surface_temp_c)

    References
    ----------
    J. C. Rewcastle, G. A. Sandison, et al., Med Phys 1998;25:974 (steady cryoprobe solutions).
    """
    k_u = tissue.conductivity_unfrozen_w_mk
    m = math.sqrt(tissue.perfusion_w_m3k / k_u)
    t_inf = tissue.steady_temperature_c

    def surface_c(r: float) -> tuple[float, float]:
        flux = r * k_u * m * (t_inf - tissue.liquidus_c) * k1(m * r) / k0(m * r)  # q'/2π
        return cryogen_temp_c + flux / (probe_radius_m * heat_transfer_w_m2k), flux

    def residual(log_r: float) -> float:
        r = math.exp(log_r)
        t_s, flux = surface_c(r)
        return float(tissue.kirchhoff_w_m(tissue.liquidus_c, t_s)) - flux * math.log(r / probe_radius_m)

    radius = math.exp(brentq(residual, math.log(probe_radius_m * (1 + 1e-9)), math.log(1.0), xtol=1e-14))
    return radius, surface_c(radius)[0]


def perfused_cylinder_temperature_c(
    tissue: Tissue, probe_radius_m: float, probe_temp_c: float, r_m: ArrayLike
) -> NDArray[np.float64]:
    """Steady temperature at radius r (m) of `perfused_cylinder_radius_m`'s problem."""
    radius = perfused_cylinder_radius_m(tissue, probe_radius_m, probe_temp_c)
    r = np.asarray(r_m, dtype=np.float64)
    k_u = tissue.conductivity_unfrozen_w_mk
    m = math.sqrt(tissue.perfusion_w_m3k / k_u)
    t_inf = tissue.steady_temperature_c
    phi = (
        float(tissue.kirchhoff_w_m(tissue.liquidus_c, probe_temp_c))
        * np.log(np.maximum(r, probe_radius_m) / probe_radius_m)
        / math.log(radius / probe_radius_m)
    )
    grid_t = np.linspace(probe_temp_c, tissue.liquidus_c, 4001)
    frozen = np.interp(phi, tissue.kirchhoff_w_m(grid_t, probe_temp_c), grid_t)
    unfrozen = t_inf - (t_inf - tissue.liquidus_c) * k0(m * r) / k0(m * radius)
    return np.where(r <= radius, frozen, unfrozen)


def perfused_cylinder_isotherm_m(
    tissue: Tissue, probe_radius_m: float, probe_temp_c: float, temperature_c: float
) -> float:
    """Radius of a frozen-side isotherm (T_p < T ≤ T_l) of the steady perfused cylinder."""
    radius = perfused_cylinder_radius_m(tissue, probe_radius_m, probe_temp_c)
    fraction = float(
        tissue.kirchhoff_w_m(temperature_c, probe_temp_c) / tissue.kirchhoff_w_m(tissue.liquidus_c, probe_temp_c)
    )
    isotherm_m: float = probe_radius_m * (radius / probe_radius_m) ** fraction
    return isotherm_m


class LineSinkSolution:
    """Freezing around a constant line sink of Q W/m at r = 0 in an infinite medium at T_i (no perfusion).

    Front R(t) = 2 λ √(α_s t); λ solves
    (Q/4π) e^(−λ²) − k_u (T_i − T_m) e^(−λ² α_s/α_u) / E1(λ² α_s/α_u) = λ² α_s L_v.

    References
    ----------
    H. S. Carslaw, J. C. Jaeger, Conduction of Heat in Solids, 2nd ed., 1959, §11.6.
    """

    def __init__(
        self, q_w_m: float, k_s: float, c_s: float, k_u: float, c_u: float, latent_j_m3: float, t_m: float, t_i: float
    ) -> None:
        self.q, self.k_s, self.k_u = q_w_m, k_s, k_u
        self.t_m, self.t_i = t_m, t_i
        self.alpha_s, self.alpha_u = k_s / c_s, k_u / c_u
        ratio = self.alpha_s / self.alpha_u

        def residual(lam: float) -> float:
            return float(
                q_w_m / (4 * math.pi) * math.exp(-lam * lam)
                - k_u * (t_i - t_m) * math.exp(-lam * lam * ratio) / exp1(lam * lam * ratio)
                - lam * lam * self.alpha_s * latent_j_m3
            )

        self.lam = float(brentq(residual, 1e-9, 3.0, xtol=1e-14))

    def front_m(self, t_s: float) -> float:
        return 2.0 * self.lam * math.sqrt(self.alpha_s * t_s)

    def temperature_c(self, r_m: ArrayLike, t_s: float) -> NDArray[np.float64]:
        r = np.maximum(np.asarray(r_m, dtype=np.float64), 1e-12)
        frozen = self.t_m - self.q / (4 * math.pi * self.k_s) * (
            exp1(r * r / (4 * self.alpha_s * t_s)) - exp1(self.lam**2)
        )
        unfrozen = self.t_i - (self.t_i - self.t_m) * exp1(r * r / (4 * self.alpha_u * t_s)) / exp1(
            self.lam**2 * self.alpha_s / self.alpha_u
        )
        profile: NDArray[np.float64] = np.where(r <= self.front_m(t_s), frozen, unfrozen)
        return profile

    def isotherm_radius_m(self, temperature_c: float, t_s: float) -> float:
        """Radius of a frozen-side isotherm T < T_m."""
        front = self.front_m(t_s)
        return float(brentq(lambda r: float(self.temperature_c(r, t_s)) - temperature_c, 1e-9, front, xtol=1e-14))


def spherical_steady_radius_m(tissue: Tissue, probe_radius_m: float, probe_temp_c: float) -> float:
    """Steady frozen radius around a spherical probe tip (single T_m, constant k per phase):
    k_s (T_m − T_p)/(R² (1/r_p − 1/R)) = k_u (T_∞ − T_m)(m + 1/R)."""
    k_s, k_u = tissue.conductivity_frozen_w_mk, tissue.conductivity_unfrozen_w_mk
    m = math.sqrt(tissue.perfusion_w_m3k / k_u)
    t_m, t_inf = tissue.liquidus_c, tissue.steady_temperature_c

    def residual(r: float) -> float:
        return k_s * (t_m - probe_temp_c) / (r * r * (1 / probe_radius_m - 1 / r)) - k_u * (t_inf - t_m) * (m + 1 / r)

    return float(brentq(residual, probe_radius_m * (1 + 1e-9), 1.0, xtol=1e-14))
