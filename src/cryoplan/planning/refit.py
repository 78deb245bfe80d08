"""The simulation re-fitted to the ice ball observed on the intraprocedural CT.

The planned probes (mapped into the intraprocedural frame) are simulated in liver, large vessels as heat
sinks, and one physically meaningful parameter is adjusted until the simulated 0 °C isotherm has the
volume of the observed ice ball: the **flow fraction** common to all probes, the share of full gas flow
that multiplies each probe's calibrated cooling (`cryoplan.thermal.ProbePlacement.flow_fraction`). It
stands for everything that makes a real freeze colder or warmer than the calibrated full-flow probe
(gas supply, probe wear, local perfusion); the ice volume grows monotonically with it, so it is found by
false position on a bracket. The lethal zone is then the fitted simulation's lethal isotherm inside the
observed ice.

The intraprocedural CT is taken as seen at the end of the protocol's last freeze (a trailing thaw is not
simulated): the ice it shows is the simulation's final 0 °C isotherm, and the lethal zone is where the
minimum temperature over the protocol reached the lethal isotherm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import vessel_components
from cryoplan.planning.organs import tissue_table
from cryoplan.progress import Progress
from cryoplan.thermal import Grid, ProbePlacement, Protocol, ThermalResult, Vessel, simulate

FIT_PARAMETER = "flow_fraction"
LOWEST_FLOW_FRACTION = 0.02
"""Lower end of the bracket: below a few per cent of full flow a probe barely freezes."""
FIRST_LOWER_FLOW_FRACTION = 0.25
"""Tried as the bracket's lower end before `LOWEST_FLOW_FRACTION` (most ice balls need more flow)."""
ICE_EDGE_C = 0.0
"""The visible ice edge on CT is taken as the 0 °C isotherm (frozen tissue is hypodense on CT)."""
RADIUS_TOLERANCE_MM = 0.1
"""The fit stops when the equivalent-sphere radii of simulated and observed ice agree to this (a tenth
of a 1 mm CT voxel; the segmented ice edge is no more certain than that)."""
MAX_RADIUS_MISMATCH_MM = 1.0
"""An ice ball whose equivalent radius stays further than this from what the bracket's ends can make is
out of the simulation's reach: the fit fails."""
MIN_ICE_DICE = 0.8
"""Below this Dice overlap of fitted and observed ice the fit is not used. A calibrated liver cryo model
reaches Dice 0.87 against clinical ice balls (Li et al., BMC Gastroenterol 2025); a much
lower overlap means the probes are not where they were said to be or the ice segmentation is wrong."""
MAX_SIMULATIONS = 10
GRID_REACH_MM = 20.0
"""The simulation grid reaches this far beyond the observed ice and the probes' active zones. Its outer
layer is a 37 °C bath: for two 17G rods 10 mm apart (freeze 10 – thaw 5 – freeze 10 min, flow fraction
0.3, 2 mm grid) a bath about 22 mm beyond the ice edge left the ice volume 0.16 % below that with the bath
10 mm further out (0.01 mm of equivalent radius)."""


@dataclass
class IceFit:
    """Outcome of re-fitting the simulation to an observed ice ball.

    Attributes
    ----------
    parameter : str
        The fitted parameter (``flow_fraction``).
    value : float
        Its fitted value.
    ice_dice : float
        Dice overlap of the fitted simulation's 0 °C isotherm with the observed ice, on the simulation grid.
    simulations : int
        Full simulations run by the fit.
    observed_ice_ml, simulated_ice_ml : float
    failure : str or None
        Why the fit is not to be used (ice out of reach, poor overlap); None when it is.
    result : ThermalResult
        The simulation at the fitted value, in the intraprocedural frame.
    """

    parameter: str
    value: float
    ice_dice: float
    simulations: int
    observed_ice_ml: float
    simulated_ice_ml: float
    protocol: str
    vessel_count: int
    failure: str | None
    result: ThermalResult

    @property
    def accepted(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "value": round(self.value, 4),
            "ice_dice": round(self.ice_dice, 3),
            "simulations": self.simulations,
            "observed_ice_ml": round(self.observed_ice_ml, 2),
            "simulated_ice_ml": round(self.simulated_ice_ml, 2),
            "protocol": self.protocol,
            "grid_mm": self.result.grid.spacing_mm,
            "vessels": self.vessel_count,
            "accepted": self.accepted,
            "failure": self.failure,
        }


def scan_protocol(protocol: Protocol) -> Protocol:
    """The protocol up to the end of its last freeze, when the intraprocedural CT is taken (thaws and a
    closing tract freeze come after the check)."""
    phases = list(protocol.phases)
    while phases and phases[-1].kind != "freeze":
        phases.pop()
    if not phases:
        raise InputError("protocol", "a protocol with at least one freeze", str(protocol))
    return Protocol(phases=tuple(phases))


def equivalent_radius_mm(volume_ml: float) -> float:
    """Radius of the sphere of this volume, mm."""
    radius_mm: float = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    return radius_mm


def sphere_volume_ml(radius_mm: float) -> float:
    """Volume of the sphere of this radius, ml."""
    return 4.0 / 3.0 * math.pi * max(radius_mm, 0.0) ** 3 / 1000.0


def _simulation_grid(ice: Volume, probes: Sequence[ProbePlacement], grid_mm: float) -> Grid:
    index = np.argwhere(np.asarray(ice.array, dtype=bool))
    ends = (index.min(axis=0), index.max(axis=0))
    corners = np.array(
        [[ends[bit][axis] for axis, bit in enumerate(bits)] for bits in np.ndindex(2, 2, 2)], dtype=np.float64
    )
    probe_points = [p for placement in probes for p in (placement.tip_mm, *placement.active_segment_mm())]
    return Grid.around(np.vstack([ice.index_to_lps(corners), np.array(probe_points)]), GRID_REACH_MM, grid_mm)


def _on_grid(mask: Volume, grid: Grid) -> np.ndarray:
    """A mask sampled (nearest voxel) at the simulation grid's voxel centres; False outside it."""
    return mask.with_array(np.asarray(mask.array) > 0).resampled(grid.shape, grid.affine).array


def _heat_sinks(vessels: Volume, grid: Grid) -> list[Vessel]:
    """The vessel segments reaching the simulation grid, each with its calibre measured on the image's own
    (finer) grid, then sampled onto the simulation grid."""
    corners = np.array([[(0, n - 1)[bit] for n, bit in zip(grid.shape, bits)] for bits in np.ndindex(2, 2, 2)])
    index = vessels.lps_to_index(grid.origin_mm + corners * grid.spacing_mm)
    lo = np.clip(np.floor(index.min(axis=0)).astype(int) - 2, 0, vessels.shape)
    hi = np.clip(np.ceil(index.max(axis=0)).astype(int) + 3, 0, vessels.shape)
    crop = np.asarray(vessels.array)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] > 0
    affine = vessels.affine.copy()
    affine[:3, 3] = vessels.index_to_lps(lo)
    sinks = []
    for mask, calibre in vessel_components(crop, vessels.spacing_mm):
        lumen = _on_grid(Volume(mask, affine), grid)
        if lumen.any():
            sinks.append(Vessel(lumen, calibre))
    return sinks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A ∩ B| / (|A| + |B|) (Dice, Ecology 1945;26:297)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 0.0


def fit_flow_fraction(
    ice: Volume,
    probes: Sequence[ProbePlacement],
    protocol: Protocol,
    *,
    vessels: Volume | None = None,
    tissues: Volume | None = None,
    lethal_isotherm_c: float = -20.0,
    grid_mm: float = 2.0,
    progress: Progress | None = None,
) -> IceFit:
    """Find the common probe flow fraction whose simulated ice ball has the observed ice ball's volume.

    The probes are simulated (`cryoplan.thermal.simulate`, baseline properties of the tissue library) in the
    tissues given, as the plan simulated them, else in liver, with the vessels' lumens as heat sinks, over
    the protocol up to the end of its last freeze. The mismatch g(f) = r_sim(f) − r_obs of the
    equivalent-sphere radii of simulated (final 0 °C isotherm) and observed ice is increasing in the flow
    fraction f; its root is bracketed by
    [`LOWEST_FLOW_FRACTION`, 1] and found by false position in ln f with the Illinois modification
    (Dowell and Jarratt, BIT 1971;11:168), the lower end tried at `FIRST_LOWER_FLOW_FRACTION` before
    `LOWEST_FLOW_FRACTION`. When g keeps one sign over the bracket the ice is out of reach
    of the probes: the nearer end is kept and the fit fails if it misses by more than
    `MAX_RADIUS_MISMATCH_MM`. The fit also fails when the fitted and observed ice overlap with a Dice
    coefficient below `MIN_ICE_DICE`.

    Parameters
    ----------
    ice : Volume
        Observed ice-ball mask on the intraprocedural grid.
    probes : sequence of ProbePlacement
        The probes in the intraprocedural frame (their own flow fractions are replaced by the fitted one).
    protocol : Protocol
        The protocol delivered; phases after the last freeze are dropped (`scan_protocol`).
    vessels : Volume, optional
        Large-vessel lumens on the intraprocedural grid; each connected segment becomes a heat sink of
        its measured calibre (`cryoplan.planning.anatomy.vessel_components`).
    tissues : Volume, optional
        Tissue labels (`cryoplan.planning.organs.TISSUE_LABELS`) on any grid of the intraprocedural frame
        (`cryoplan.planning.organs.tissue_label_volume`), sampled at the nearest voxel; liver beyond them.
    lethal_isotherm_c : float
        Recorded by the simulation for the lethal zone.
    grid_mm : float
        Simulation grid spacing (1.5–2 mm keeps a fit to a few seconds per simulation).
    progress : callable, optional
        ``progress(label, fraction)``, as `cryoplan.planning.pipeline.plan_case` takes it.

    Returns
    -------
    IceFit
    """
    observed_mask = np.asarray(ice.array, dtype=bool)
    if not observed_mask.any():
        raise InputError("ice", "an ice ball with at least one voxel")
    if not probes:
        raise InputError("probes", "at least one probe placement")
    if not (np.isfinite(grid_mm) and 0.5 <= grid_mm <= 3.0):
        raise InputError("grid_mm", "a simulation grid of 0.5–3 mm", grid_mm)
    protocol = scan_protocol(protocol)
    grid = _simulation_grid(ice, probes, grid_mm)
    observed = _on_grid(ice, grid)
    observed_ml = float(observed_mask.sum()) * ice.voxel_volume_ml
    target_mm = equivalent_radius_mm(observed_ml)
    sinks = [] if vessels is None else _heat_sinks(vessels, grid)
    labels = np.zeros(grid.shape, dtype=np.int32)  # label 0: liver
    if tissues is not None:
        labels[...] = tissues.resampled(grid.shape, grid.affine).array
    runs: dict[float, ThermalResult] = {}

    def mismatch_mm(flow_fraction: float) -> float:
        if progress:
            progress(
                f"re-fitting the simulation to the ice: run {len(runs) + 1} (flow fraction {flow_fraction:.3f})", 0.0
            )
        result = simulate(
            grid,
            [replace(p, flow_fraction=flow_fraction) for p in probes],
            protocol,
            tissue_labels=labels,
            tissues=tissue_table(),
            vessels=sinks,
            isotherms_c=sorted({ICE_EDGE_C, float(lethal_isotherm_c)}, reverse=True),
            progress=(lambda f: progress(None, f)) if progress else None,
        )
        runs[flow_fraction] = result
        return equivalent_radius_mm(result.isotherm_volume_ml(ICE_EDGE_C, "final")) - target_mm

    hi, g_hi = 0.0, mismatch_mm(1.0)
    best, best_g = 1.0, g_hi
    lo: float | None = None
    g_lo: float | None = None
    if g_hi > RADIUS_TOLERANCE_MM:
        for flow_fraction in (FIRST_LOWER_FLOW_FRACTION, LOWEST_FLOW_FRACTION):
            g = mismatch_mm(flow_fraction)
            if abs(g) < abs(best_g):
                best, best_g = flow_fraction, g
            if g <= RADIUS_TOLERANCE_MM:
                lo, g_lo = math.log(flow_fraction), g
                break
            hi, g_hi = math.log(flow_fraction), g
        if lo is not None and g_lo is not None and g_lo < -RADIUS_TOLERANCE_MM:
            side = 0  # Illinois: halve the weight of an end that is kept twice in a row
            while len(runs) < MAX_SIMULATIONS:
                u = hi - g_hi * (hi - lo) / (g_hi - g_lo)
                g = mismatch_mm(math.exp(u))
                if abs(g) < abs(best_g):
                    best, best_g = math.exp(u), g
                if abs(g) <= RADIUS_TOLERANCE_MM:
                    break
                if g > 0:
                    hi, g_hi = u, g
                    if side == 1:
                        g_lo *= 0.5
                    side = 1
                else:
                    lo, g_lo = u, g
                    if side == -1:
                        g_hi *= 0.5
                    side = -1
    result = runs[best]
    simulated = result.isotherm_mask(ICE_EDGE_C, "final")
    overlap = dice(simulated, observed)
    failure = None
    if best_g < -MAX_RADIUS_MISMATCH_MM:
        failure = (
            f"the observed ice ({observed_ml:.1f} ml) is larger than the probes make at full flow "
            f"({sphere_volume_ml(target_mm + best_g):.1f} ml)"
        )
    elif best_g > MAX_RADIUS_MISMATCH_MM:
        failure = (
            f"the observed ice ({observed_ml:.1f} ml) is smaller than the probes make at "
            f"{best:g} of full flow ({sphere_volume_ml(target_mm + best_g):.1f} ml)"
        )
    elif overlap < MIN_ICE_DICE:
        failure = (
            f"the fitted 0 °C isotherm overlaps the observed ice poorly (Dice {overlap:.2f} < "
            f"{MIN_ICE_DICE:g}): probes not where given, or the ice segmentation is off"
        )
    return IceFit(
        parameter=FIT_PARAMETER,
        value=float(best),
        ice_dice=overlap,
        simulations=len(runs),
        observed_ice_ml=observed_ml,
        simulated_ice_ml=result.isotherm_volume_ml(ICE_EDGE_C, "final"),
        protocol=str(protocol),
        vessel_count=len(sinks),
        failure=failure,
        result=result,
    )


def lethal_zone_inside_ice(fit: IceFit, intra_image: Volume, ice: np.ndarray, lethal_isotherm_c: float) -> np.ndarray:
    """The fitted simulation's lethal isotherm (minimum temperature ≤ `lethal_isotherm_c`) inside the
    observed ice, on the intraprocedural grid (temperature trilinear between simulation voxel centres)."""
    lethal = np.zeros(intra_image.shape, dtype=bool)
    index = np.argwhere(ice)
    if index.size == 0:
        return lethal
    points = intra_image.index_to_lps(index)
    keep = fit.result.grid.contains(points) & (fit.result.temperature_along_c(points, "min") <= lethal_isotherm_c)
    lethal[tuple(index[keep].T)] = True
    return lethal
