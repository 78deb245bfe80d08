"""Planning units and staged sessions: which lesions share probes, and which are treated together.

Lesions close enough to share an ice ball (`cryoplan.planning.anatomy.planning_units`) are planned together
only when one ice ball covering them is cheaper and safer on the isotherm charts' estimate than separate
ones: no more probes and no more frozen healthy liver in all, and no critical structure reached that the
separate plans spare. Otherwise each lesion is planned on its own.

A session treats at most `SessionLimits.max_lesions` lesions, freezes at most `SessionLimits.max_frozen_ml`
of tissue and at most `SessionLimits.max_frozen_liver_fraction` of the healthy liver. Units are placed
first-fit in decreasing order of frozen volume (a unit that alone exceeds a limit gets a session of its own
and keeps its flag). Every session carries the cryoshock flag (frozen volume) and the frozen-liver fraction
flag when it exceeds them.

None of these thresholds is a guideline value (no guideline gives one): they are configurable defaults.

References
----------
.. [1] Seifert JK, Morris DL. World survey on the complications of hepatic and prostate cryotherapy.
   World J Surg 1999;23:109–114 (cryoshock after freezing large volumes of liver, about 30–35 % of it).
.. [2] European Association for the Study of the Liver. EASL Clinical Practice Guidelines: management of
   hepatocellular carcinoma. J Hepatol 2018;69:182–236 (ablation for up to three nodules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryoplan.errors import InputError
from cryoplan.planning.anatomy import PlanningAnatomy, planning_units
from cryoplan.planning.coverage import Risk
from cryoplan.planning.paths import PathMap, max_path_mm, ranked_directions
from cryoplan.planning.search import Candidate, build_target, search_candidates
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import get_probe

#: Lesions one session treats: ablation is indicated for up to three nodules [2].
MAX_LESIONS_PER_SESSION = 3
#: Frozen volume of one session above which cryoshock is flagged; not a guideline value [1].
CRYOSHOCK_FROZEN_ML = 500.0
#: Share of the healthy liver one session may freeze; cryoshock followed freezing about 30–35 % of it [1].
MAX_FROZEN_LIVER_FRACTION = 0.30


@dataclass(frozen=True)
class SessionLimits:
    """What one session may treat and freeze (module docstring: thresholds and sources)."""

    max_lesions: int = MAX_LESIONS_PER_SESSION
    max_frozen_ml: float = CRYOSHOCK_FROZEN_ML
    max_frozen_liver_fraction: float = MAX_FROZEN_LIVER_FRACTION

    def check(self) -> SessionLimits:
        if self.max_lesions < 1:
            raise InputError("max_lesions_per_session", "at least one lesion per session", self.max_lesions)
        if not self.max_frozen_ml > 0:
            raise InputError("max_frozen_ml_per_session", "a frozen volume above 0 ml", self.max_frozen_ml)
        if not 0 < self.max_frozen_liver_fraction <= 1:
            raise InputError(
                "max_frozen_liver_fraction",
                "a fraction of the liver above 0 and at most 1",
                self.max_frozen_liver_fraction,
            )
        return self


@dataclass
class Session:
    """One treatment session: its planning units and what it freezes."""

    number: int
    unit_ids: list[str]
    lesion_ids: list[str]
    frozen_volume_ml: float
    frozen_liver_ml: float | None
    frozen_liver_fraction: float | None
    risks: list[Risk] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.number,
            "unit_ids": self.unit_ids,
            "lesion_ids": self.lesion_ids,
            "frozen_volume_ml": round(self.frozen_volume_ml, 1),
            "frozen_liver_ml": None if self.frozen_liver_ml is None else round(self.frozen_liver_ml, 1),
            "frozen_liver_fraction": None
            if self.frozen_liver_fraction is None
            else round(self.frozen_liver_fraction, 4),
            "risks": [r.to_dict() for r in self.risks],
        }


@dataclass
class UnitLoad:
    """What a planning unit adds to a session (from its full simulation)."""

    unit_id: str
    lesion_ids: list[str]
    frozen_volume_ml: float
    frozen_liver_ml: float | None


def session_risks(frozen_ml: float, fraction: float | None, limits: SessionLimits, number: int) -> list[Risk]:
    """The cryoshock flag (frozen volume) and the frozen-liver fraction flag of one session."""
    risks = []
    if frozen_ml > limits.max_frozen_ml:
        risks.append(
            Risk(
                "cryoshock",
                f"session {number} freezes {frozen_ml:.0f} ml, above the alert of {limits.max_frozen_ml:g} ml "
                "(not a guideline value; Seifert & Morris, World J Surg 1999)",
            )
        )
    if fraction is not None and fraction > limits.max_frozen_liver_fraction:
        risks.append(
            Risk(
                "frozen_liver_fraction",
                f"session {number} freezes {100 * fraction:.0f} % of the healthy liver, above "
                f"{100 * limits.max_frozen_liver_fraction:g} % (cryoshock followed freezing 30–35 % of the liver; "
                "Seifert & Morris, World J Surg 1999)",
            )
        )
    return risks


def staged_sessions(
    loads: list[UnitLoad], healthy_liver_ml: float | None, limits: SessionLimits = SessionLimits()
) -> list[Session]:
    """Split planning units into sessions within `limits` (first-fit, largest frozen volume first).

    Parameters
    ----------
    loads : list of UnitLoad
        Every planning unit of the case with its simulated frozen volumes.
    healthy_liver_ml : float, optional
        Volume of the liver outside the tumours, for the frozen fraction (None: no liver known).
    limits : SessionLimits

    Returns
    -------
    list of Session
        Numbered from 1, each with its cryoshock and frozen-fraction flags.
    """
    limits = limits.check()
    if healthy_liver_ml is not None and not healthy_liver_ml > 0:
        raise InputError("liver", "a liver of more than 0 ml", healthy_liver_ml)

    def fraction(liver_ml: float | None) -> float | None:
        return None if healthy_liver_ml is None or liver_ml is None else liver_ml / healthy_liver_ml

    bins: list[list[UnitLoad]] = []
    for load in sorted(loads, key=lambda u: -u.frozen_volume_ml):
        for members in bins:
            lesions = sum(len(m.lesion_ids) for m in members) + len(load.lesion_ids)
            frozen = sum(m.frozen_volume_ml for m in members) + load.frozen_volume_ml
            liver = sum(m.frozen_liver_ml or 0.0 for m in members) + (load.frozen_liver_ml or 0.0)
            share = fraction(liver)
            if (
                lesions <= limits.max_lesions
                and frozen <= limits.max_frozen_ml
                and (share is None or share <= limits.max_frozen_liver_fraction)
            ):
                members.append(load)
                break
        else:
            bins.append([load])
    order = {load.unit_id: n for n, load in enumerate(loads)}
    bins.sort(key=lambda members: min(order[m.unit_id] for m in members))
    sessions = []
    for number, members in enumerate(bins, start=1):
        members.sort(key=lambda m: order[m.unit_id])
        frozen = sum(m.frozen_volume_ml for m in members)
        livers = [m.frozen_liver_ml for m in members]
        total_liver = None if any(v is None for v in livers) else sum(v for v in livers if v is not None)
        share = fraction(total_liver)
        sessions.append(
            Session(
                number,
                [m.unit_id for m in members],
                [i for m in members for i in m.lesion_ids],
                frozen,
                total_liver,
                share,
                session_risks(frozen, share, limits, number),
            )
        )
    return sessions


def cheapest_estimate(
    anatomy: PlanningAnatomy, path_map: PathMap, settings: PlanSettings, lesion_ids: list[str]
) -> Candidate | None:
    """The cheapest layout whose chart estimate covers the lesions' tumour + margin (None when none does)."""
    target = build_target(anatomy, lesion_ids, settings.margin_mm)
    probes = [get_probe(p) for p in settings.probe_types]
    directions = ranked_directions(
        path_map,
        target.centre,
        settings,
        max(p.radius_mm for p in probes),
        max(p.active_length_mm / 2 + p.tip_offset_mm for p in probes),
        reach_mm=max(max_path_mm(settings, p) for p in probes),
    )
    if not directions:
        return None
    found = search_candidates(target, path_map, settings, directions)
    return found[0] if found else None


def shared_ice_is_better(merged: Candidate | None, separate: list[Candidate | None]) -> bool:
    """Whether one ice ball (`merged`) is cheaper and safer than the separate plans (module docstring)."""
    if merged is None:
        return False
    plans = [c for c in separate if c is not None]
    if len(plans) < len(separate):
        return True
    return (
        len(merged.probes) <= sum(len(c.probes) for c in plans)
        and merged.estimated_frozen_healthy_ml <= sum(c.estimated_frozen_healthy_ml for c in plans)
        and (merged.critical_ok or not all(c.critical_ok for c in plans))
    )


def planning_groups(anatomy: PlanningAnatomy, path_map: PathMap, settings: PlanSettings) -> list[list[str]]:
    """The case's planning units: close lesions together when sharing is better, otherwise one by one."""
    groups = []
    for lesion_ids in planning_units(anatomy, settings.margin_mm):
        if len(lesion_ids) == 1:
            groups.append(lesion_ids)
            continue
        merged = cheapest_estimate(anatomy, path_map, settings, lesion_ids)
        separate = [cheapest_estimate(anatomy, path_map, settings, [i]) for i in lesion_ids]
        groups += [lesion_ids] if shared_ice_is_better(merged, separate) else [[i] for i in lesion_ids]
    return groups
