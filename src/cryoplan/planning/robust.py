"""Probability that a plan succeeds under real-world error, estimated with a sequential test.

A sample of the uncertainty model (`cryoplan.planning.uncertainty`: probe placement error, tissue and probe
properties) *succeeds* when every lesion of the unit meets its margin on the sample's lethal zone
(`cryoplan.planning.coverage.margin_met`, the criterion `verify` applies). The samples of a plan are
Bernoulli trials with an unknown probability of success p; a plan is robust when p reaches the confidence
asked for (0.9 by default).

Samples are drawn until Wald's sequential probability ratio test decides between p ≥ target + δ (robust)
and p ≤ target − δ (not robust), δ being the indifference half-width, with error rates α and β; a test
that reaches its budget of samples undecided is reported as such, with the estimate and its Wilson score
interval. Sample i of a seed draws from its own generator (seed, i), so a test that stops early and one
that runs longer agree on the samples they share.

References
----------
.. [1] Wald A. Sequential tests of statistical hypotheses. Ann Math Stat 1945;16:117–186.
.. [2] Wilson EB. Probable inference, the law of succession, and statistical inference. J Am Stat Assoc
   1927;22:209–212.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from cryoplan.errors import InputError
from cryoplan.planning.anatomy import PlanningAnatomy
from cryoplan.planning.search import Candidate
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.uncertainty import (
    DIRECTION_SIGMA_DEG,
    TIP_SIGMA_MM,
    margin_succeeds,
    run_sample,
    sample_context,
    wilson_interval,
)
from cryoplan.progress import Progress
from cryoplan.thermal import parse_protocol

DEFAULT_CONFIDENCE = 0.9


@dataclass(frozen=True)
class SequentialTest:
    """Wald's SPRT for a Bernoulli probability against `target` [1].

    Attributes
    ----------
    target : float
        Probability of success a robust plan reaches.
    indifference : float
        δ: the test tells p ≥ target + δ from p ≤ target − δ (clamped inside (0, 1)).
    alpha, beta : float
        Probability of calling a plan robust whose p ≤ target − δ, and of rejecting one whose p ≥ target + δ.
    max_samples : int
        Budget: the test stops undecided after this many samples.
    """

    target: float = DEFAULT_CONFIDENCE
    indifference: float = 0.05
    alpha: float = 0.05
    beta: float = 0.1
    max_samples: int = 60

    def check(self) -> SequentialTest:
        if not 0.5 <= self.target < 1.0:
            raise InputError("confidence", "a probability of success from 0.5 to below 1", self.target)
        if not 0 < self.indifference < min(self.target, 1 - self.target) + 1e-12:
            raise InputError("indifference", f"a half-width above 0 and below {1 - self.target:g}", self.indifference)
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise InputError("alpha", "error rates above 0 and below 0.5", (self.alpha, self.beta))
        if self.max_samples < 1:
            raise InputError("max_samples", "at least one sample", self.max_samples)
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """(p0, p1): the probabilities of the two hypotheses."""
        return self.target - self.indifference, min(self.target + self.indifference, 1 - 1e-9)

    def log_likelihood_ratio(self, successes: int, samples: int) -> float:
        p0, p1 = self.bounds
        failures = samples - successes
        return successes * math.log(p1 / p0) + failures * math.log((1 - p1) / (1 - p0))

    def decision(self, successes: int, samples: int) -> str | None:
        """``robust``, ``not_robust``, or None while undecided."""
        ratio = self.log_likelihood_ratio(successes, samples)
        if ratio >= math.log((1 - self.beta) / self.alpha):
            return "robust"
        if ratio <= math.log(self.beta / (1 - self.alpha)):
            return "not_robust"
        return None


@dataclass
class SuccessProbability:
    """The estimated probability that a plan meets every lesion's margin under the uncertainty model."""

    successes: int
    samples: int
    decision: str | None
    target: float
    seed: int
    elapsed_s: float
    margins_mm: tuple[float, ...] = ()  # each sample's thinnest lesion margin

    @property
    def thinnest_margin_mm(self) -> float:
        """The thinnest margin of any sample (mm): what the planner's search aims above after a failed test."""
        return min(self.margins_mm)

    @property
    def probability(self) -> float:
        return self.successes / self.samples if self.samples else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.samples)

    @property
    def robust(self) -> bool:
        return self.decision == "robust"

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "probability_of_success": round(self.probability, 4),
            "probability_interval_95": [round(low, 4), round(high, 4)],
            "successes": self.successes,
            "samples": self.samples,
            "confidence": self.target,
            "decision": self.decision or "undecided",
            "method": "sequential probability ratio test (Wald 1945)",
            "seed": self.seed,
            "thinnest_sampled_margin_mm": (
                round(self.thinnest_margin_mm, 2)
                if self.margins_mm and math.isfinite(self.thinnest_margin_mm)
                else None
            ),
            "elapsed_s": round(self.elapsed_s, 2),
        }


def success_probability(
    anatomy: PlanningAnatomy,
    unit: PlanUnderTest,
    settings: PlanSettings,
    *,
    test: SequentialTest | None = None,
    seed: int = 0,
    grid_mm: float | None = None,
    tip_sigma_mm: float = TIP_SIGMA_MM,
    direction_sigma_deg: float = DIRECTION_SIGMA_DEG,
    samples: int | None = None,
    progress: Progress | None = None,
) -> SuccessProbability:
    """Sample the uncertainty model on a unit's plan until the sequential test decides (module docstring).

    Parameters
    ----------
    anatomy : PlanningAnatomy
    unit : PlanUnderTest
        A planning unit's lesions and plan (a `cryoplan.planning.pipeline.UnitPlan` has both too).
    settings : PlanSettings
        Margin, lethal isotherm and grid.
    test : SequentialTest, optional
        The test (default: target 0.9, δ 0.05, α 0.05, β 0.1, 60 samples at most).
    seed : int
        Seed of the samples.
    grid_mm : float, optional
        Grid of the sampled simulations (the plan's grid when None).
    samples : int, optional
        Draw exactly this many samples instead of stopping when the test decides (the decision is still
        the test's on all of them).
    progress : callable, optional
        ``progress(None, fraction)`` after each sample (fraction of the budget).

    Returns
    -------
    SuccessProbability
    """
    test = (test or SequentialTest(target=settings.confidence)).check()
    started = time.perf_counter()
    context = sample_context(unit, settings, grid_mm, tip_sigma_mm, direction_sigma_deg, anatomy)
    protocol = parse_protocol(context.protocol_text)
    budget = samples or test.max_samples
    successes = drawn = 0
    margins: list[float] = []
    decision = None
    while drawn < budget and (samples or decision is None):
        margins.append(run_sample(context, protocol, drawn, seed)[3])
        successes += margin_succeeds(context, margins[-1])
        drawn += 1
        decision = test.decision(successes, drawn)
        if progress:
            progress(None, drawn / budget)
    return SuccessProbability(
        successes, drawn, decision, test.target, seed, time.perf_counter() - started, tuple(margins)
    )


@dataclass
class PlanUnderTest:
    """A candidate plan of a planning unit, as `success_probability` (and the uncertainty sampling) takes it."""

    lesion_ids: list[str]
    candidate: Candidate
