"""Liver-function scores: Child-Pugh, ALBI, MELD, MELD-Na and MELD 3.0.

Pure functions of numbers in stated units; the case model converts lab units before calling them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

Ascites = Literal["none", "mild", "moderate_severe"]


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves away from zero (Python's `round` rounds halves to even).

    The decimal repr of `x` is rounded, so 7.5 gives 8 and 6.5 gives 7.

    Examples
    --------
    >>> round_half_up(6.5), round(6.5)
    (7, 6)
    """
    return int(Decimal(repr(x)).to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class ChildPugh:
    """Child-Pugh points (5-15), class (A, B, C) and the points of each component."""

    points: int
    child_class: Literal["A", "B", "C"]
    components: dict[str, int]

    @property
    def label(self) -> str:
        """Class and points, e.g. ``"B7"``."""
        return f"{self.child_class}{self.points}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "class": self.child_class,
            "label": self.label,
            "components": dict(self.components),
        }


def _three_bands(value: float, low: float, high: float) -> int:
    """1 point below `low`, 2 in the closed band [`low`, `high`], 3 above `high`."""
    return 1 if value < low else (2 if value <= high else 3)


def child_pugh(
    *,
    bilirubin_mg_dl: float,
    albumin_g_dl: float,
    ascites: Ascites,
    encephalopathy_grade: int,
    inr: float | None = None,
    prothrombin_time_prolonged_s: float | None = None,
    cholestatic: bool = False,
) -> ChildPugh:
    """Child-Pugh score.

    Bilirubin < 2, 2-3, > 3 mg/dL (cholestatic disease, PBC or PSC: < 4, 4-10, > 10); albumin > 3.5,
    2.8-3.5, < 2.8 g/dL; INR < 1.7, 1.7-2.3, > 2.3, or when no INR the prothrombin time prolonged < 4, 4-6,
    > 6 s; ascites none, mild (or controlled with diuretics), moderate to severe; encephalopathy none,
    grade 1-2, grade 3-4. Class A 5-6, B 7-9, C 10-15 points.

    Conventions: the middle bands are closed (bilirubin exactly 2.0 or 3.0 mg/dL, albumin exactly 2.8 or
    3.5 g/dL, INR exactly 1.7 or 2.3, PT exactly 4 or 6 s score 2); albumin bands are Pugh's 2.8 / 3.5 g/dL
    (not 3.0); INR bands 1.7 / 2.3 (not 2.2); INR is used when both INR and PT are given.

    Parameters
    ----------
    bilirubin_mg_dl, albumin_g_dl : float
        Total bilirubin (mg/dL) and albumin (g/dL).
    ascites : {"none", "mild", "moderate_severe"}
    encephalopathy_grade : int
        West Haven grade 0-4.
    inr, prothrombin_time_prolonged_s : float, optional
        One of them is required.
    cholestatic : bool
        Primary biliary or sclerosing cholangitis: the cholestatic bilirubin bands.

    References
    ----------
    Pugh RNH, Murray-Lyon IM, Dawson JL, Pietroni MC, Williams R. Transection of the oesophagus for
    bleeding oesophageal varices. Br J Surg 1973;60:646-649.

    Examples
    --------
    >>> child_pugh(bilirubin_mg_dl=2.0, albumin_g_dl=3.6, ascites="none", encephalopathy_grade=0, inr=1.1).label
    'A6'
    """
    if inr is not None:
        coagulation = _three_bands(inr, 1.7, 2.3)
    elif prothrombin_time_prolonged_s is not None:
        coagulation = _three_bands(prothrombin_time_prolonged_s, 4, 6)
    else:
        raise ValueError("child_pugh needs inr or prothrombin_time_prolonged_s")
    components = {
        "bilirubin": _three_bands(bilirubin_mg_dl, *((4, 10) if cholestatic else (2, 3))),
        "albumin": 4 - _three_bands(albumin_g_dl, 2.8, 3.5),  # high albumin is good: the bands reversed
        "coagulation": coagulation,
        "ascites": {"none": 1, "mild": 2, "moderate_severe": 3}[ascites],
        "encephalopathy": 1 if encephalopathy_grade == 0 else (2 if encephalopathy_grade <= 2 else 3),
    }
    points = sum(components.values())
    child_class: Literal["A", "B", "C"] = "A" if points <= 6 else ("B" if points <= 9 else "C")
    return ChildPugh(points, child_class, components)


@dataclass(frozen=True)
class Albi:
    """ALBI score (unrounded) and grade (1-3)."""

    score: float
    grade: Literal[1, 2, 3]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "grade": self.grade}


def albi(*, bilirubin_umol_l: float, albumin_g_l: float) -> Albi:
    """Albumin-bilirubin (ALBI) grade.

    ``ALBI = 0.66 log10(bilirubin µmol/L) - 0.085 albumin g/L``; grade 1 ≤ -2.60 < grade 2 ≤ -1.39 < grade 3.
    Convention: the grade comes from the unrounded score (-2.597 shows as -2.60 but is grade 2).

    References
    ----------
    Johnson PJ, Berhane S, Kagebayashi C, et al. Assessment of liver function in patients with
    hepatocellular carcinoma: a new evidence-based approach, the ALBI grade. J Clin Oncol 2015;33:550-558.
    """
    score = 0.66 * math.log10(bilirubin_umol_l) - 0.085 * albumin_g_l
    return Albi(score, albi_grade(score))


def albi_grade(score: float) -> Literal[1, 2, 3]:
    """ALBI grade of an unrounded score: 1 when ≤ -2.60, 2 when ≤ -1.39, else 3 (Johnson et al. 2015)."""
    return 1 if score <= -2.60 else (2 if score <= -1.39 else 3)


def meld(*, bilirubin_mg_dl: float, inr: float, creatinine_mg_dl: float, dialysis: bool = False) -> int:
    """MELD score as OPTN/UNOS computes it (6-40).

    Bilirubin, INR and creatinine below 1.0 are set to 1.0; creatinine is capped at 4.0 mg/dL and set to
    4.0 after dialysis at least twice in the past 7 days (or 24 h of CVVHD).
    ``MELD(i) = 0.957 ln(Cr) + 0.378 ln(bili) + 1.120 ln(INR) + 0.643``, times 10, rounded half up
    (the same as rounding to the tenth and multiplying by 10), capped at 40.

    References
    ----------
    Kamath PS, Wiesner RH, Malinchoc M, et al. A model to predict survival in patients with end-stage liver
    disease. Hepatology 2001;33:464-470. OPTN policy 9.1 (MELD calculation).
    """
    creatinine = 4.0 if dialysis else min(max(creatinine_mg_dl, 1.0), 4.0)
    raw = (
        0.957 * math.log(creatinine)
        + 0.378 * math.log(max(bilirubin_mg_dl, 1.0))
        + 1.120 * math.log(max(inr, 1.0))
        + 0.643
    )
    return min(round_half_up(10 * raw), 40)


def meld_na(*, meld_score: int, sodium_mmol_l: float) -> int:
    """MELD-Na (OPTN 2016).

    Sodium is bounded to 125-137 mmol/L. When MELD > 11,
    ``MELD + 1.32 (137 - Na) - 0.033 MELD (137 - Na)``, rounded half up and capped at 40; otherwise MELD.
    Convention: MELD in this formula is the rounded integer MELD (`meld`).

    References
    ----------
    Kim WR, Biggins SW, Kremers WK, et al. Hyponatremia and mortality among patients on the liver-transplant
    waiting list. N Engl J Med 2008;359:1018-1026. OPTN policy 9.1 (2016).
    """
    if meld_score <= 11:
        return meld_score
    sodium = min(max(sodium_mmol_l, 125.0), 137.0)
    return min(round_half_up(meld_score + 1.32 * (137 - sodium) - 0.033 * meld_score * (137 - sodium)), 40)


def meld_3(
    *,
    bilirubin_mg_dl: float,
    inr: float,
    creatinine_mg_dl: float,
    sodium_mmol_l: float,
    albumin_g_dl: float,
    sex: Literal["male", "female"] | None,
    age: int,
    dialysis: bool = False,
) -> int:
    """MELD 3.0 (OPTN from July 2023), bounded to 6-40.

    ``1.33 (female) + 4.56 ln(bili) + 0.82 (137 - Na) - 0.24 (137 - Na) ln(bili) + 9.09 ln(INR)
    + 11.14 ln(Cr) + 1.85 (3.5 - alb) - 1.83 (3.5 - alb) ln(Cr) + 6``, with bilirubin, INR and creatinine
    floored at 1.0, creatinine capped at 3.0 mg/dL (3.0 after dialysis), sodium bounded 125-137 mmol/L,
    albumin bounded 1.5-3.5 g/dL. The sex term applies from age 18; from 12 to 17 the intercept is 7.33
    whatever the sex (which may then be None). Convention: rounded half up, then bounded to 6-40 as the OPTN
    calculator does.

    The interaction terms make the score rise with albumin when creatinine exceeds e^(1.85/1.83) ≈ 2.75
    mg/dL, and with sodium when bilirubin exceeds e^(0.82/0.24) ≈ 30.5 mg/dL; elsewhere it falls with both.

    Raises
    ------
    ValueError
        Under 12 years of age, where PELD applies instead.

    References
    ----------
    Kim WR, Mannalithara A, Heimbach JK, et al. MELD 3.0: the model for end-stage liver disease updated for
    the modern era. Gastroenterology 2021;161:1887-1895.
    """
    if age < 12:
        raise ValueError("MELD 3.0 is defined from age 12 (PELD applies below)")
    bili = math.log(max(bilirubin_mg_dl, 1.0))
    creatinine = math.log(3.0 if dialysis else min(max(creatinine_mg_dl, 1.0), 3.0))
    sodium = 137 - min(max(sodium_mmol_l, 125.0), 137.0)
    albumin = 3.5 - min(max(albumin_g_dl, 1.5), 3.5)
    intercept = 7.33 if (age < 18 or sex == "female") else 6.0
    raw = (
        intercept
        + 4.56 * bili
        + 0.82 * sodium
        - 0.24 * sodium * bili
        + 9.09 * math.log(max(inr, 1.0))
        + 11.14 * creatinine
        + 1.85 * albumin
        - 1.83 * albumin * creatinine
    )
    return min(max(round_half_up(raw), 6), 40)
