"""Local search on the full simulation: a plan's probes moved until the lethal zone reaches the margin.

The isotherm charts score layouts in homogeneous liver; a large vessel beside the tumour draws heat the
charts do not see, and the rules of the paths (ribs, vessels, ducts) rule out the layouts the charts would
take. Starting from a chart candidate, the search simulates the plan on the patient's anatomy (vessels as
heat sinks) on a coarse grid, finds the tumour voxel where the lethal zone's margin is thinnest, and tries
moves that carry cold towards it, each with its paths and spacing checked again:

* **tilt**: the probe nearest the thinnest margin pivots about its skin entry, its tip moved towards that
  point across its axis (probes through the same intercostal window converge or diverge this way);
* **advance**: that probe alone inserted deeper (or withdrawn) along its own path, towards the point's
  depth (staggered tips carry the ice past a pole of the tumour that the probes' active zones end short of);
* **shift**: the whole layout moved across its axis towards the point, every path traced again;
* **lean**: every tip moved so, the skin entries kept (the probes pivot together through their window);
* **spread**: every tip moved away from the layout's axis, the skin entries kept (a wider spacing at
  the tips without new entries); and its opposite, **gather**;
* **depth**: the layout moved along its axis towards the point's side.

A move is kept when it raises the worst minimal margin over the unit's lesions without bringing a
critical structure (bile duct, gallbladder, bowel) to the critical temperature that the plan spared
before; when no move improves, the step is halved, down to `MIN_STEP_MM`. This is a pattern search
(Hooke and Jeeves, J ACM 1961;8:212–229) whose pattern is set by the thinnest margin. Tilts, leans,
spreads and gathers make probes non-parallel, so they are tried only when ``settings.paths`` allows
converging probes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from cryoplan.planning.paths import PathMap, max_path_mm, probe_paths
from cryoplan.planning.search import Candidate, ProbePlan, converging_spacing_ok
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import get_probe

#: First step of the search, mm: about a third of a 17G rod's lethal radius.
FIRST_STEP_MM = 4.0
#: The search stops when its step falls below this, mm (half the coarse grid's 2 mm voxel).
MIN_STEP_MM = 1.0


@dataclass
class Evaluation:
    """A candidate's full simulation, as the local search ranks it.

    Attributes
    ----------
    candidate : Candidate
    min_margin_mm : float
        The worst minimal margin of the lethal zone over the unit's lesions.
    margin_covered_pct : float
        The smallest share of tumour + margin covered over the unit's lesions.
    critical_ok : bool
        No bile duct, gallbladder or bowel at or below the critical temperature.
    thinnest_lps_mm : numpy.ndarray
        The tumour voxel where the margin is thinnest.
    met : bool
        The search's goal on its grid (`goal_met`).
    """

    candidate: Candidate
    min_margin_mm: float
    margin_covered_pct: float
    critical_ok: bool
    thinnest_lps_mm: np.ndarray
    met: bool


def better(new: Evaluation, old: Evaluation) -> bool:
    """Whether `new` improves on `old`: a larger worst margin, never at the price of a critical structure
    that `old` spared; the covered share breaks ties."""
    if old.critical_ok and not new.critical_ok:
        return False
    if new.critical_ok and not old.critical_ok:
        return True
    return (new.min_margin_mm, new.margin_covered_pct) > (old.min_margin_mm, old.margin_covered_pct)


def with_tips(
    candidate: Candidate,
    path_map: PathMap,
    settings: PlanSettings,
    tips: np.ndarray,
    directions: np.ndarray,
) -> Candidate | None:
    """The candidate's probes at new tips and directions, their skin entries traced again; None when a path
    breaks a clearance or leaves no checked skin entry, or the probes break the spacing rules
    (`converging_spacing_ok`)."""
    probe = get_probe(candidate.probes[0].probe_id)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    entries = probe_paths(path_map, tips, directions, probe.radius_mm, max_path_mm(settings, probe))
    if entries is None:
        return None
    probes = [ProbePlan(p.probe_id, t, d, e) for p, t, d, e in zip(candidate.probes, tips, directions, entries)]
    if len(probes) > 1 and not converging_spacing_ok(probes, settings):
        return None
    return replace(candidate, probes=probes)


def unit(vector: np.ndarray) -> np.ndarray | None:
    length = float(np.linalg.norm(vector))
    return vector / length if length > 1e-9 else None


def moves(
    candidate: Candidate, path_map: PathMap, settings: PlanSettings, toward: np.ndarray, step_mm: float
) -> list[tuple[str, Candidate]]:
    """The feasible moves of the search (module docstring) by `step_mm` towards the point `toward`."""
    tips = np.array([p.tip_lps_mm for p in candidate.probes])
    axes = np.array([p.direction for p in candidate.probes])
    entries = np.array([p.entry_lps_mm for p in candidate.probes])
    axis = unit(axes.mean(axis=0))
    assert axis is not None  # probes inserted from one side never cancel their directions
    centre = tips.mean(axis=0)
    offset = toward - centre
    found: list[tuple[str, Candidate | None]] = []
    tilting = settings.paths != "parallel" and len(tips) > 1
    probe = get_probe(candidate.probes[0].probe_id)
    middles = tips - axes * (probe.tip_offset_mm + probe.active_length_mm / 2)
    nearest = int(np.argmin(np.linalg.norm(middles - toward, axis=1)))
    if tilting:
        across = toward - tips[nearest]
        across = unit(across - (across @ axes[nearest]) * axes[nearest])
        if across is not None:
            moved = tips.copy()
            moved[nearest] += step_mm * across
            found.append(("tilt", with_tips(candidate, path_map, settings, moved, moved - entries)))
    deeper = float((toward - middles[nearest]) @ axes[nearest])
    if len(tips) > 1 and abs(deeper) > 1e-6:
        moved = tips.copy()
        moved[nearest] += step_mm * np.sign(deeper) * axes[nearest]
        found.append(("advance", with_tips(candidate, path_map, settings, moved, axes)))
    across = unit(offset - (offset @ axis) * axis)
    if across is not None:
        found.append(("shift", with_tips(candidate, path_map, settings, tips + step_mm * across, axes)))
        if tilting:
            moved = tips + step_mm * across
            found.append(("lean", with_tips(candidate, path_map, settings, moved, moved - entries)))
    if tilting:
        radial = (tips - centre) - ((tips - centre) @ axis)[:, None] * axis
        lengths = np.linalg.norm(radial, axis=1, keepdims=True)
        if np.all(lengths > 1e-6):
            outward = radial / lengths
            for name, sign in (("spread", 1.0), ("gather", -1.0)):
                moved = tips + sign * step_mm * outward
                found.append((name, with_tips(candidate, path_map, settings, moved, moved - entries)))
    along = float(offset @ axis)
    if abs(along) > 1e-6:
        found.append(("depth", with_tips(candidate, path_map, settings, tips + step_mm * np.sign(along) * axis, axes)))
    return [(name, move) for name, move in found if move is not None]


def local_search(
    start: Evaluation,
    evaluate: Callable[[Candidate], Evaluation],
    path_map: PathMap,
    settings: PlanSettings,
    budget: int,
    first_step_mm: float = FIRST_STEP_MM,
) -> tuple[Evaluation, int, list[str]]:
    """Improve `start` by the moves of the module docstring until it meets its goal, the step falls below
    `MIN_STEP_MM`, or `budget` simulations are spent (first improvement kept).

    Parameters
    ----------
    start : Evaluation
        The starting plan, simulated.
    evaluate : callable
        Simulates a candidate on the search's grid.
    budget : int
        Most simulations the search may run.

    Returns
    -------
    (best Evaluation, simulations run, the moves kept in order)
    """
    best, step, used, kept = start, first_step_mm, 0, []
    while not best.met and step >= MIN_STEP_MM and used < budget:
        improved = None
        for name, candidate in moves(best.candidate, path_map, settings, best.thinnest_lps_mm, step):
            if used >= budget:
                break
            evaluation = evaluate(candidate)
            used += 1
            if better(evaluation, best):
                improved = evaluation
                kept.append(f"{name} {step:g} mm")
                break
        if improved is None:
            step /= 2
        else:
            best = improved
    return best, used, kept
