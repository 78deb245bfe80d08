"""cryoplan.thermal: Pennes bioheat with phase change, cryoprobes, protocols and exact solutions.

Does not import `cryoplan.imaging` or `cryoplan.clinical`: these areas do not know each other (the import
contracts enforce it).
"""

from cryoplan.thermal import analytic
from cryoplan.thermal.grid import Grid
from cryoplan.thermal.probes import PROBES, ProbePlacement, ProbeType, get_probe
from cryoplan.thermal.protocol import DEFAULT_PROTOCOL, Phase, Protocol, parse_protocol
from cryoplan.thermal.result import ThermalResult
from cryoplan.thermal.solver import simulate
from cryoplan.thermal.tissue import TISSUES, Tissue, load_medium
from cryoplan.thermal.vessel import Vessel

__all__ = [
    "DEFAULT_PROTOCOL",
    "Grid",
    "PROBES",
    "Phase",
    "ProbePlacement",
    "ProbeType",
    "Protocol",
    "TISSUES",
    "ThermalResult",
    "Tissue",
    "Vessel",
    "analytic",
    "get_probe",
    "load_medium",
    "parse_protocol",
    "simulate",
]
