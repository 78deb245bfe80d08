"""Settings of the planner: what the optimiser may choose and what a plan must reach."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cryoplan.errors import InputError
from cryoplan.imaging.body import STRUCTURE_CLEARANCE_MM
from cryoplan.thermal import Protocol, get_probe, parse_protocol

PATH_KINDS = ("any", "parallel", "converging")
#: Patient positions on the CT table, and the side each one leaves reachable.
POSITIONS = ("supine", "prone", "left_decubitus")
#: Structures a path keeps a clearance from (`cryoplan.imaging.body.STRUCTURE_CLEARANCE_MM`), plus gas inside
#: the body that no label names (lung or bowel by its HU), kept as far as the lung.
DEFAULT_CLEARANCES_MM: dict[str, float] = {**STRUCTURE_CLEARANCE_MM, "gas": STRUCTURE_CLEARANCE_MM["lung"]}


@dataclass(frozen=True)
class PlanSettings:
    """Choices of the optimiser.

    The default lethal isotherms (−20 °C after a double freeze, −40 °C after a single one) follow the
    lethal temperatures of cryosurgery (Gage & Baust, Cryobiology 1998;37:171–186).

    Attributes
    ----------
    lethal_isotherm_c : float
        −20 °C for a double freeze (the default protocol), −40 °C for a single one.
    margin_mm : float
        Margin around the tumour that the lethal isotherm must cover (5–10 mm).
    coverage_target_pct : float
        Share of tumour + margin a layout must cover on the isotherm charts' estimate to be a candidate (the
        charts only rank layouts; a plan succeeds by the margin rule, `cryoplan.planning.coverage.margin_met`).
    max_probes : int
    probe_types : tuple of str
        Library probes the optimiser may use. Default: the two 17G needles and the 2.4 mm probe, so that a
        3 cm tumour may get several 17G needles or fewer larger probes (the lethal isotherm grows with probe
        size and number; Littrup et al., J Vasc Interv Radiol 2009;20:1343); the cheapest plan (fewest
        probes first) decides among them. Any library probe may be added or left out.
    freeze_minutes : tuple of float
        Candidate durations of each freeze (10–15 min by default).
    passive_thaw_minutes : float
        Passive thaw between the two freezes.
    freeze_count : int
        1 (single freeze) or 2 (double freeze).
    spacing_mm : tuple of float
        Candidate distances between neighbouring probes (10–20 mm).
    min_vessel_calibre_mm : float
        Vessels of at least this calibre are avoided by the paths and simulated as heat sinks.
    critical_temperature_c : float
        Bile ducts, gallbladder and bowel should stay warmer than this.
    entry_max_posterior, entry_max_craniocaudal : float
        Skin entry window: the direction from the tumour to the skin entry may point at most this far
        (as a direction cosine) towards the table (posteriorly when supine, anteriorly when prone, to the
        patient's left in left decubitus), and at most this far up or down: a craniocaudal angle of at
        most asin(0.6) ≈ 37° out of the axial plane (a double-oblique path that CT guidance still follows in
        reformatted planes; a planning choice, settable).
    max_path_mm : float
        Longest allowed path from the skin to the tip (each probe type is also limited by its working length).
    position : {"supine", "prone", "left_decubitus"}
        The patient's position on the table.
    clearances_mm : dict
        Clearance a path keeps from each structure, mm (tissue between the probe's surface and the
        structure), overriding `DEFAULT_CLEARANCES_MM` by name.
    entries_lps_mm : dict
        Skin entry point per lesion id (LPS mm), given by the user: the lesion's probes are inserted
        along the line from it to the lesion's centre.
    paths : {"any", "parallel", "converging"}
        Parallel probes (one insertion direction); converging ones (all skin entries within `entry_radius_mm`
        of one skin point, the probes diverging towards their tips); or any (the default: both kinds of
        layout from the charts, and the local search may tilt probes about their skin entries, as through
        one intercostal window when ribs leave few entries).
    entry_radius_mm : float
        Radius of the skin entry region of converging paths.
    grid_mm : float
        Spacing of the final full simulation.
    chart_grid_mm : float
        Spacing of the probes' isotherm charts (they only rank candidates; the final simulation decides).
    max_full_simulations : int
        Budget of full simulations on the plan's grid (`grid_mm`) per planning unit: the checks of the
        plans the search found.
    max_search_simulations : int
        Budget of coarse full simulations (on `chart_grid_mm`) per planning unit for the local search
        (`cryoplan.planning.local_search`) over every probe count and freeze tried.
    confidence : float
        Probability of success (every lesion's margin met under placement, tissue and probe error) a robust
        plan reaches (`cryoplan.planning.robust`).
    robust_samples : int
        Most uncertainty samples the sequential test draws per candidate plan (0: no robust planning).
    """

    lethal_isotherm_c: float = -20.0
    margin_mm: float = 5.0
    coverage_target_pct: float = 99.0
    max_probes: int = 6
    probe_types: tuple[str, ...] = ("17g-sphere", "17g-rod", "2.4mm")
    freeze_minutes: tuple[float, ...] = (10.0, 15.0)
    passive_thaw_minutes: float = 5.0
    freeze_count: int = 2
    spacing_mm: tuple[float, ...] = (10.0, 12.5, 15.0, 17.5, 20.0)
    min_vessel_calibre_mm: float = 3.0
    critical_temperature_c: float = -20.0
    entry_max_posterior: float = 0.5
    entry_max_craniocaudal: float = 0.6
    max_path_mm: float = 220.0
    position: str = "supine"
    clearances_mm: dict[str, float] = field(default_factory=dict)
    entries_lps_mm: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    paths: str = "any"
    entry_radius_mm: float = 15.0
    grid_mm: float = 1.0
    chart_grid_mm: float = 2.0
    max_full_simulations: int = 3
    max_search_simulations: int = 30
    confidence: float = 0.9
    robust_samples: int = 0

    def check(self) -> PlanSettings:
        """Validate the settings; `InputError` names the first bad one."""
        if not -60.0 <= self.lethal_isotherm_c <= -10.0:
            raise InputError("lethal_isotherm_c", "a lethal isotherm between −60 and −10 °C", self.lethal_isotherm_c)
        if not 0.0 <= self.margin_mm <= 10.0:
            raise InputError("margin_mm", "a margin between 0 and 10 mm", self.margin_mm)
        if not 50.0 <= self.coverage_target_pct <= 100.0:
            raise InputError("coverage_target_pct", "a target between 50 and 100 %", self.coverage_target_pct)
        if not 0.5 <= self.confidence < 1.0:
            raise InputError("confidence", "a probability of success from 0.5 to below 1", self.confidence)
        if not 1 <= self.max_full_simulations <= 20:
            raise InputError("max_full_simulations", "1 to 20 simulations", self.max_full_simulations)
        if not 0 <= self.max_search_simulations <= 500:
            raise InputError("max_search_simulations", "0 to 500 simulations", self.max_search_simulations)
        if not 0 <= self.robust_samples <= 1000:
            raise InputError("robust_samples", "0 to 1000 samples per candidate", self.robust_samples)
        if not 1 <= self.max_probes <= 8:
            raise InputError("max_probes", "1 to 8 probes", self.max_probes)
        if not self.freeze_minutes or any(not (0 < m <= 30) for m in self.freeze_minutes):
            raise InputError("freeze_minutes", "freezes of more than 0 and at most 30 minutes", self.freeze_minutes)
        if self.freeze_count not in (1, 2):
            raise InputError("freeze_count", "1 or 2 freezes", self.freeze_count)
        if not 0 < self.passive_thaw_minutes <= 30:
            raise InputError(
                "passive_thaw_minutes", "a thaw of more than 0 and at most 30 minutes", self.passive_thaw_minutes
            )
        if not self.spacing_mm or any(not (5 <= s <= 30) for s in self.spacing_mm):
            raise InputError("spacing_mm", "probe spacings between 5 and 30 mm", self.spacing_mm)
        for n, probe_id in enumerate(self.probe_types):
            get_probe(probe_id, field=f"probe_types[{n}]")
        if not self.probe_types:
            raise InputError("probe_types", "at least one probe type")
        if self.paths not in PATH_KINDS:
            raise InputError("paths", " or ".join(PATH_KINDS), self.paths)
        if not 2.0 <= self.entry_radius_mm <= 50.0:
            raise InputError("entry_radius_mm", "an entry region radius between 2 and 50 mm", self.entry_radius_mm)
        if self.position not in POSITIONS:
            raise InputError("position", " or ".join(POSITIONS), self.position)
        for name, value in self.clearances_mm.items():
            if name not in DEFAULT_CLEARANCES_MM:
                raise InputError(
                    f"clearances_mm.{name}", f"a structure, one of {', '.join(DEFAULT_CLEARANCES_MM)}", name
                )
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 30.0):
                raise InputError(f"clearances_mm.{name}", "a clearance from 0 to 30 mm", value)
        for lesion_id, point in self.entries_lps_mm.items():
            if len(point) != 3 or not all(math.isfinite(float(v)) for v in point):
                raise InputError(f"entries.{lesion_id}", "an entry point x,y,z in LPS mm", point)
        return self

    @property
    def clearances(self) -> dict[str, float]:
        """Clearance per structure, mm: the defaults with the settings' own values over them."""
        return {**DEFAULT_CLEARANCES_MM, **self.clearances_mm}

    def protocol(self, minutes: float) -> Protocol:
        """The freeze–thaw protocol with freezes of `minutes`."""
        phases = [f"freeze:{minutes:g}"]
        if self.freeze_count == 2:
            phases += [f"passive_thaw:{self.passive_thaw_minutes:g}", f"freeze:{minutes:g}"]
        return parse_protocol(",".join(phases))
