"""Freeze–thaw protocols: a sequence of timed phases applied to every probe."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cryoplan.errors import InputError

PhaseKind = Literal["freeze", "passive_thaw", "active_thaw", "tract_freeze"]
PHASE_KINDS: tuple[str, ...] = ("freeze", "passive_thaw", "active_thaw", "tract_freeze")

FREEZE_SURFACE_C = -140.0
"""Probe surface temperature during a full-flow argon freeze (the cryoablation template of Go-Smart, the open
simulation environment for minimally invasive cancer treatment of an EU FP7 project, go-smart.eu)."""

ACTIVE_THAW_SURFACE_C = 30.0
"""Probe surface temperature during an active thaw: the middle of the +20 … +40 °C that helium or electrical
thaw systems hold, an uncertain value."""


class Phase(BaseModel):
    """One phase of a protocol.

    ``freeze`` cools each probe's active zone (scaled by `flow_fraction` and the probe's own flow
    fraction); ``passive_thaw`` leaves the probe insulated; ``active_thaw`` warms it to
    `ACTIVE_THAW_SURFACE_C`; ``tract_freeze``, the last phase only, freezes while every probe is withdrawn
    along its shaft at a steady pace by `withdrawal_mm` over the phase, freezing the tract against
    tumour seeding.
    """

    model_config = ConfigDict(frozen=True)

    kind: PhaseKind
    minutes: float = Field(gt=0)
    flow_fraction: float = Field(1.0, ge=0, le=1)
    withdrawal_mm: float = Field(0.0, ge=0)

    @field_validator("minutes")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes


class Protocol(BaseModel):
    """An ordered list of phases."""

    model_config = ConfigDict(frozen=True)

    phases: tuple[Phase, ...] = Field(min_length=1)

    @field_validator("phases")
    @classmethod
    def _tract_freeze_last(cls, phases: tuple[Phase, ...]) -> tuple[Phase, ...]:
        for n, phase in enumerate(phases):
            if phase.kind == "tract_freeze" and (n != len(phases) - 1 or phase.withdrawal_mm <= 0):
                raise ValueError("a tract_freeze must be the last phase and withdraw the probes by > 0 mm")
        return phases

    @property
    def total_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def freeze_count(self) -> int:
        return sum(phase.kind == "freeze" for phase in self.phases)

    def __str__(self) -> str:
        return ",".join(
            f"{p.kind}:{p.minutes:g}"
            + (f":{p.withdrawal_mm:g}" if p.kind == "tract_freeze" else "")
            + (f"@{p.flow_fraction:g}" if p.flow_fraction != 1 else "")
            for p in self.phases
        )


def parse_protocol(text: str, field: str = "protocol") -> Protocol:
    """Parse ``"freeze:10,passive_thaw:5,freeze:10"``; a freeze may carry a flow fraction, ``freeze:10@0.5``;
    a closing tract freeze names its withdrawal in mm, ``tract_freeze:1:20`` (1 min, 20 mm).

    Raises
    ------
    InputError
        Naming the phase (``protocol[2].minutes``) for an unknown kind, a non-positive or unreadable
        duration, a flow fraction outside [0, 1], a tract freeze without a positive withdrawal or before the
        last phase.
    """
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise InputError(field, 'phases like "freeze:10,passive_thaw:5,freeze:10"', text)
    phases = []
    for n, item in enumerate(items):
        kind, sep, rest = item.partition(":")
        kind = kind.strip()
        if kind not in PHASE_KINDS:
            raise InputError(f"{field}[{n}].kind", f"one of {', '.join(PHASE_KINDS)}", kind)
        timing, _, flow_text = rest.partition("@")
        minutes_text, _, withdrawal_text = timing.partition(":")
        try:
            minutes = float(minutes_text)
        except ValueError:
            raise InputError(f"{field}[{n}].minutes", "a number of minutes", minutes_text) from None
        if not (math.isfinite(minutes) and minutes > 0):
            raise InputError(f"{field}[{n}].minutes", "a positive, finite duration in minutes", minutes)
        flow = 1.0
        if flow_text:
            try:
                flow = float(flow_text)
            except ValueError:
                raise InputError(f"{field}[{n}].flow_fraction", "a number in [0, 1]", flow_text) from None
            if not (0.0 <= flow <= 1.0):
                raise InputError(f"{field}[{n}].flow_fraction", "a number in [0, 1]", flow)
        withdrawal = 0.0
        if kind == "tract_freeze":
            if n != len(items) - 1:
                raise InputError(f"{field}[{n}].kind", "tract_freeze only as the last phase", kind)
            try:
                withdrawal = float(withdrawal_text)
            except ValueError:
                raise InputError(
                    f"{field}[{n}].withdrawal_mm", 'a withdrawal in mm, as in "tract_freeze:1:20"', withdrawal_text
                ) from None
            if not (math.isfinite(withdrawal) and withdrawal > 0):
                raise InputError(f"{field}[{n}].withdrawal_mm", "a positive, finite distance in mm", withdrawal)
        elif withdrawal_text:
            raise InputError(f"{field}[{n}].minutes", "a number of minutes", timing)
        phases.append(Phase(kind=kind, minutes=minutes, flow_fraction=flow, withdrawal_mm=withdrawal))
    return Protocol(phases=tuple(phases))


DEFAULT_PROTOCOL = parse_protocol("freeze:10,passive_thaw:5,freeze:10")
"""The seed's double freeze: freeze 10 min, passive thaw 5 min, freeze 10 min."""
