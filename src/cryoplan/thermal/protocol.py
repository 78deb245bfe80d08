"""Freeze–thaw protocols: a sequence of timed phases applied to every probe."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cryoplan.errors import InputError

PhaseKind = Literal["freeze", "passive_thaw", "active_thaw"]
PHASE_KINDS: tuple[str, ...] = ("freeze", "passive_thaw", "active_thaw")

FREEZE_SURFACE_C = -140.0
"""Probe surface temperature during a full-flow argon freeze (physics.md §1, Go-Smart cryo template)."""

ACTIVE_THAW_SURFACE_C = 30.0
"""Probe surface temperature during an active thaw (physics.md §1: about +20 … +40 °C, uncertain)."""


class Phase(BaseModel):
    """One phase of a protocol.

    ``freeze`` cools each probe's active zone (scaled by `flow_fraction` and the probe's own flow
    fraction); ``passive_thaw`` leaves the probe insulated; ``active_thaw`` warms it to
    `ACTIVE_THAW_SURFACE_C`.
    """

    model_config = ConfigDict(frozen=True)

    kind: PhaseKind
    minutes: float = Field(gt=0)
    flow_fraction: float = Field(1.0, ge=0, le=1)

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

    @property
    def total_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def freeze_count(self) -> int:
        return sum(phase.kind == "freeze" for phase in self.phases)

    def __str__(self) -> str:
        return ",".join(f"{p.kind}:{p.minutes:g}" + (f"@{p.flow_fraction:g}" if p.flow_fraction != 1 else "")
                        for p in self.phases)


def parse_protocol(text: str, field: str = "protocol") -> Protocol:
    """Parse ``"freeze:10,passive_thaw:5,freeze:10"``; a freeze may carry a flow fraction, ``freeze:10@0.5``.

    Raises
    ------
    InputError
        Naming the phase (``protocol[2].minutes``) for an unknown kind, a non-positive or unreadable
        duration, or a flow fraction outside [0, 1].
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
        minutes_text, _, flow_text = rest.partition("@")
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
        phases.append(Phase(kind=kind, minutes=minutes, flow_fraction=flow))
    return Protocol(phases=tuple(phases))


DEFAULT_PROTOCOL = parse_protocol("freeze:10,passive_thaw:5,freeze:10")
"""The seed's double freeze: freeze 10 min, passive thaw 5 min, freeze 10 min."""
