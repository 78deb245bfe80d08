"""HCC staging (BCLC 2022) and transplant criteria (Milan, UCSF, up-to-seven).

Pure functions of lesion diameters (mm), invasion and spread, ECOG and Child-Pugh. An input that is
``None`` is unknown: a result that depends on it is ``None`` too, and a result that does not (a nodule
already too large for Milan) is still given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryoplan.clinical.scores import ChildPugh

Stage = Literal["0", "A", "B", "C", "D"]

#: BCLC 2022 treatment guidance per stage (Reig et al. 2022), as text for the report.
BCLC_TREATMENT = {
    "0": "Ablation first; resection as the alternative.",
    "A": "Resection, transplantation or ablation; ablation, TACE, TARE or SBRT can bridge to transplant.",
    "B": (
        "Transplantation under extended criteria, TACE for well-defined nodules, systemic therapy for diffuse disease."
    ),
    "C": "Systemic therapy.",
    "D": "Best supportive care.",
}


@dataclass(frozen=True)
class Bclc:
    """BCLC 2022 stage (``None`` when undetermined), the stage tumour burden and ECOG alone give, whether
    liver function is preserved, and the reason."""

    stage: Stage | None
    burden_stage: Stage | None
    liver_function_preserved: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "burden_stage": self.burden_stage,
            "liver_function_preserved": self.liver_function_preserved,
            "reason": self.reason,
        }


def _mm(d: float) -> str:
    return f"{d:g} mm"


def bclc_burden_stage(
    diameters_mm: Sequence[float],
    *,
    vascular_invasion: bool | None,
    extrahepatic_spread: bool | None,
    ecog: int | None,
) -> tuple[Stage | None, str]:
    """The BCLC stage that tumour burden and ECOG alone give, with its reason.

    ECOG ≥ 3 → D; macrovascular (portal) invasion, extrahepatic spread or ECOG 1-2 → C; otherwise (ECOG 0)
    a single nodule ≤ 20 mm → 0; a single nodule of any size, or ≤ 3 nodules each ≤ 30 mm → A; beyond → B.
    Bounds are inclusive.

    References
    ----------
    Reig M, Forner A, Rimola J, et al. BCLC strategy for prognosis prediction and treatment recommendation:
    the 2022 update. J Hepatol 2022;76:681-693.
    """
    if ecog is not None and ecog >= 3:
        return "D", f"ECOG {ecog}"
    advanced = [
        text
        for present, text in (
            (vascular_invasion, "macrovascular invasion"),
            (extrahepatic_spread, "extrahepatic spread"),
            (ecog is not None and 1 <= ecog <= 2, f"ECOG {ecog}"),
        )
        if present
    ]
    if advanced:
        return "C", " and ".join(advanced)
    unknown = [
        name
        for name, value in (
            ("ECOG", ecog),
            ("vascular invasion", vascular_invasion),
            ("extrahepatic spread", extrahepatic_spread),
        )
        if value is None
    ]
    if not diameters_mm:
        unknown.append("lesions")
    if unknown:
        return None, f"unknown: {', '.join(unknown)}"
    count, largest = len(diameters_mm), max(diameters_mm)
    if count == 1 and largest <= 20:
        return "0", f"single nodule of {_mm(largest)} (≤ 20 mm), ECOG 0"
    if count == 1:
        return "A", f"single nodule of {_mm(largest)}, ECOG 0"
    if count <= 3 and largest <= 30:
        return "A", f"{count} nodules, largest {_mm(largest)} (≤ 3 nodules each ≤ 30 mm), ECOG 0"
    return "B", f"{count} nodules, largest {_mm(largest)}: multinodular beyond stage A, ECOG 0"


def bclc(
    diameters_mm: Sequence[float],
    *,
    vascular_invasion: bool | None,
    extrahepatic_spread: bool | None,
    ecog: int | None,
    child_pugh: ChildPugh | None,
    ascites: str | None,
) -> Bclc:
    """BCLC 2022 stage of an HCC.

    Precedence: D (ECOG ≥ 3, or end-stage liver function) before C (macrovascular invasion, extrahepatic
    spread or ECOG 1-2) before B / A / 0 by tumour burden (`bclc_burden_stage`).

    Conventions: preserved liver function is Child-Pugh A without any ascites; end-stage is Child-Pugh C.
    Child-Pugh B, or A with ascites, is neither, and the 2022 stage is then undetermined (``None``) with the
    reason; `Bclc.burden_stage` still gives the stage that tumour burden and ECOG alone give.

    Parameters
    ----------
    diameters_mm : sequence of float
        Largest diameter of each nodule.
    vascular_invasion, extrahepatic_spread : bool or None
    ecog : int or None
    child_pugh : ChildPugh or None
        ``None`` when its inputs are missing.
    ascites : str or None
        ``"none"``, ``"mild"`` or ``"moderate_severe"``.

    References
    ----------
    Reig M, Forner A, Rimola J, et al. BCLC strategy for prognosis prediction and treatment recommendation:
    the 2022 update. J Hepatol 2022;76:681-693.
    """
    burden_stage, burden_reason = bclc_burden_stage(
        diameters_mm, vascular_invasion=vascular_invasion, extrahepatic_spread=extrahepatic_spread, ecog=ecog
    )
    if child_pugh is None:
        preserved, liver = None, "liver function unknown (Child-Pugh inputs missing)"
    elif child_pugh.child_class == "C":
        preserved, liver = False, f"end-stage liver function (Child-Pugh {child_pugh.label})"
    elif child_pugh.child_class == "A" and ascites == "none":
        preserved, liver = True, f"preserved liver function (Child-Pugh {child_pugh.label}, no ascites)"
    else:
        with_ascites = ", with ascites" if child_pugh.child_class == "A" else ""
        preserved, liver = (
            False,
            f"Child-Pugh {child_pugh.label}{with_ascites}: liver function neither preserved nor end-stage",
        )
    if burden_stage == "D":
        return Bclc("D", burden_stage, preserved, f"{burden_reason} (performance status), {liver}")
    if child_pugh is not None and child_pugh.child_class == "C":
        return Bclc("D", burden_stage, preserved, liver)
    if preserved is None:
        return Bclc(None, burden_stage, None, f"undetermined: {liver}; burden and ECOG: {burden_reason}")
    if not preserved:
        return Bclc(
            None,
            burden_stage,
            False,
            f"undetermined: {liver}, for which BCLC 2022 defines no stage; burden and ECOG: {burden_reason}",
        )
    if burden_stage is None:
        return Bclc(None, None, True, f"undetermined: {burden_reason}; {liver}")
    return Bclc(burden_stage, burden_stage, True, f"{burden_reason}, {liver}")


@dataclass(frozen=True)
class TransplantCriteria:
    """Whether an HCC is within the Milan, UCSF and up-to-seven criteria (``None`` when unknown)."""

    milan: bool | None
    ucsf: bool | None
    up_to_seven: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"milan": self.milan, "ucsf": self.ucsf, "up_to_seven": self.up_to_seven}


def _within(burden_ok: bool, exclusions: Sequence[bool | None]) -> bool | None:
    """Three-valued AND: burden within the bounds and none of the exclusions present."""
    if not burden_ok or any(e is True for e in exclusions):
        return False
    return None if any(e is None for e in exclusions) else True


def milan(
    diameters_mm: Sequence[float], *, vascular_invasion: bool | None, extrahepatic_spread: bool | None
) -> bool | None:
    """Milan criteria: one nodule ≤ 50 mm, or 2-3 nodules each ≤ 30 mm; no macrovascular invasion, no
    extrahepatic spread. Bounds inclusive.

    References
    ----------
    Mazzaferro V, Regalia E, Doci R, et al. Liver transplantation for the treatment of small hepatocellular
    carcinomas in patients with cirrhosis. N Engl J Med 1996;334:693-699.
    """
    if not diameters_mm:
        return None
    n, largest = len(diameters_mm), max(diameters_mm)
    burden_ok = (n == 1 and largest <= 50) or (2 <= n <= 3 and largest <= 30)
    return _within(burden_ok, [vascular_invasion, extrahepatic_spread])


def ucsf(
    diameters_mm: Sequence[float], *, vascular_invasion: bool | None, extrahepatic_spread: bool | None
) -> bool | None:
    """UCSF criteria: one nodule ≤ 65 mm, or 2-3 nodules with the largest ≤ 45 mm and the sum of diameters
    ≤ 80 mm; no gross vascular invasion, no extrahepatic spread (the criteria presume disease confined to
    the liver). Bounds inclusive (three 30 mm nodules are outside: sum 90 mm).

    References
    ----------
    Yao FY, Ferrell L, Bass NM, et al. Liver transplantation for hepatocellular carcinoma: expansion of the
    tumor size limits does not adversely impact survival. Hepatology 2001;33:1394-1403.
    """
    if not diameters_mm:
        return None
    n, largest = len(diameters_mm), max(diameters_mm)
    burden_ok = (n == 1 and largest <= 65) or (2 <= n <= 3 and largest <= 45 and sum(diameters_mm) <= 80)
    return _within(burden_ok, [vascular_invasion, extrahepatic_spread])


def up_to_seven(
    diameters_mm: Sequence[float], *, vascular_invasion: bool | None, extrahepatic_spread: bool | None
) -> bool | None:
    """Up-to-seven: number of nodules + largest diameter in cm ≤ 7; no vascular invasion, no extrahepatic
    spread (the criteria presume disease confined to the liver).

    Computed in millimetres (10 × count + largest mm ≤ 70) so the bound is exact.

    References
    ----------
    Mazzaferro V, Llovet JM, Miceli R, et al. Predicting survival after liver transplantation in patients
    with hepatocellular carcinoma beyond the Milan criteria. Lancet Oncol 2009;10:35-43.
    """
    if not diameters_mm:
        return None
    burden_ok = 10 * len(diameters_mm) + max(diameters_mm) <= 70
    return _within(burden_ok, [vascular_invasion, extrahepatic_spread])
