"""Eligibility for liver cryoablation: the selection criteria, the verdict and the recommendations.

`assess` turns a `Case` into an `Assessment`: the liver scores, HCC staging and transplant criteria, one
criterion per row of the seed's selection table with a status, a verdict and recommendations with their
reasons and sources. The status rules and the verdict are the contract of issue 2 (see `criteria` and
`verdict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from cryoplan.case import Case
from cryoplan.clinical import scores, staging
from cryoplan.clinical.scores import Albi, ChildPugh
from cryoplan.clinical.staging import Bclc, TransplantCriteria

Status = Literal["preferred", "conditional", "review", "contraindicated", "unknown", "not_applicable"]
Verdict = Literal["suitable", "suitable_with_conditions", "mdt_review", "not_recommended"]

#: Total tumour volume (sum of spheres of each lesion's diameter) above which the assessment cautions about
#: cryoshock. Not a guideline threshold: no guideline gives one; 50 ml is a 46 mm sphere, about 150 ml frozen
#: once a 10 mm margin is added. Configurable through `assess`.
DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML = 50.0

SEED = "cryoplan clinical seed: selection criteria and indications for liver cryoablation"
SOURCES = {
    "bclc": "Reig M et al. BCLC strategy for prognosis prediction and treatment recommendation: the 2022 update. "
    "J Hepatol 2022;76:681-693",
    "milan": "Mazzaferro V et al. N Engl J Med 1996;334:693-699 (Milan criteria); seed: bridge to transplant",
    "sir": "Patel IJ et al. SIR consensus guidelines for the periprocedural management of thrombotic and "
    "bleeding risk. J Vasc Interv Radiol 2019;30:1168-1184; seed: platelet count",
    "cryoshock": "cryoplan default, not a guideline threshold (cryoshock in about 1 % of hepatic "
    "cryoablations, rising with the frozen volume)",
}


@dataclass(frozen=True)
class Criterion:
    """One row of the selection table: its value (in `unit`), status and a note."""

    id: str
    value: float | int | str | None
    unit: str | None
    status: Status
    note: str

    def to_dict(self) -> dict:
        return {"id": self.id, "value": self.value, "unit": self.unit, "status": self.status, "note": self.note}


@dataclass(frozen=True)
class Recommendation:
    """A recommendation with the reason it applies to this case and its source."""

    id: str
    text: str
    reason: str
    source: str

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "reason": self.reason, "source": self.source}


@dataclass(frozen=True)
class Meld:
    """MELD, MELD-Na and MELD 3.0 (each ``None`` when its inputs are missing)."""

    meld: int | None
    meld_na: int | None
    meld_3: int | None
    note: str | None = None

    def to_dict(self) -> dict:
        return {"meld": self.meld, "meld_na": self.meld_na, "meld_3": self.meld_3, "note": self.note}


@dataclass(frozen=True)
class Assessment:
    """The eligibility assessment of one case; `to_dict` gives the JSON document (schema_version 1)."""

    case_id: str | None
    diagnosis: str
    child_pugh: ChildPugh | None
    albi: Albi | None
    meld: Meld
    bclc: Bclc | None
    transplant: TransplantCriteria | None
    total_tumour_volume_ml: float | None
    criteria: list[Criterion]
    verdict: Verdict
    recommendations: list[Recommendation]
    missing_inputs: list[str]
    unused_fhir_observations: list[str] = field(default_factory=list)
    imaging_flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def optional(item):
            return None if item is None else item.to_dict()

        return {
            "schema_version": 1,
            "case_id": self.case_id,
            "diagnosis": self.diagnosis,
            "child_pugh": optional(self.child_pugh),
            "albi": optional(self.albi),
            "meld": self.meld.to_dict(),
            "bclc": optional(self.bclc),
            "transplant": optional(self.transplant),
            "total_tumour_volume_ml": self.total_tumour_volume_ml,
            "criteria": [c.to_dict() for c in self.criteria],
            "verdict": self.verdict,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "missing_inputs": list(self.missing_inputs),
            "unused_fhir_observations": list(self.unused_fhir_observations),
            "imaging_flags": list(self.imaging_flags),
        }


class _Missing:
    """Collects the field paths of missing inputs, in the order first met."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def check(self, inputs: dict[str, object]) -> bool:
        """Record the inputs (field path → value) that are ``None``; True when none is."""
        absent = [path for path, value in inputs.items() if value is None]
        self.paths += [p for p in absent if p not in self.paths]
        return not absent

    def add(self, path: str) -> None:
        if path not in self.paths:
            self.paths.append(path)


def _child_pugh(case: Case, missing: _Missing) -> ChildPugh | None:
    labs, clinical = case.labs, case.clinical
    coagulation = labs.inr if labs.inr is not None else labs.prothrombin_time_prolonged_s
    if not missing.check(
        {
            "labs.bilirubin": labs.bilirubin,
            "labs.albumin": labs.albumin,
            "labs.inr or labs.prothrombin_time_prolonged_s": coagulation,
            "clinical.ascites": clinical.ascites,
            "clinical.encephalopathy_grade": clinical.encephalopathy_grade,
        }
    ):
        return None

    def score(cholestatic: bool) -> ChildPugh:
        return scores.child_pugh(
            bilirubin_mg_dl=labs.bilirubin.canonical,
            albumin_g_dl=labs.albumin.canonical,
            ascites=clinical.ascites,
            encephalopathy_grade=clinical.encephalopathy_grade,
            inr=labs.inr,
            prothrombin_time_prolonged_s=labs.prothrombin_time_prolonged_s,
            cholestatic=cholestatic,
        )

    disease = case.diagnosis.liver_disease
    if disease is not None:
        return score(disease in ("pbc", "psc"))
    # Unknown liver disease: the result stands when the cholestatic and usual bilirubin bands agree.
    usual, cholestatic = score(False), score(True)
    if usual != cholestatic:
        missing.add("diagnosis.liver_disease")
        return None
    return usual


def _meld(case: Case, missing: _Missing) -> Meld:
    labs, patient = case.labs, case.patient
    if patient.age is not None and patient.age < 12:
        return Meld(None, None, None, "MELD is defined from age 12; PELD applies below")
    if not missing.check({"labs.bilirubin": labs.bilirubin, "labs.inr": labs.inr, "labs.creatinine": labs.creatinine}):
        return Meld(None, None, None)
    common = dict(
        bilirubin_mg_dl=labs.bilirubin.canonical,
        inr=labs.inr,
        creatinine_mg_dl=labs.creatinine.canonical,
        dialysis=labs.dialysis_twice_past_week,
    )
    meld = scores.meld(**common)
    meld_na = (
        scores.meld_na(meld_score=meld, sodium_mmol_l=labs.sodium.canonical)
        if missing.check({"labs.sodium": labs.sodium})
        else None
    )
    sex_needed = patient.age is None or patient.age >= 18
    meld_3 = None
    if missing.check(
        {
            "labs.sodium": labs.sodium,
            "labs.albumin": labs.albumin,
            "patient.age": patient.age,
            **({"patient.sex": patient.sex} if sex_needed else {}),
        }
    ):
        meld_3 = scores.meld_3(
            **common,
            sodium_mmol_l=labs.sodium.canonical,
            albumin_g_dl=labs.albumin.canonical,
            sex=patient.sex,
            age=patient.age,
        )
    return Meld(meld, meld_na, meld_3)


def criteria(case: Case, child_pugh: ChildPugh | None) -> list[Criterion]:
    """The selection criteria and their status.

    - ``lesion_count``: 1-3 preferred; more than 3 review (staged sessions).
    - ``max_diameter``: ≤ 30 mm preferred; over 30 and ≤ 50 mm conditional (multi-probe); over 50 mm review.
    - ``child_pugh`` (HCC, or cirrhosis present): A5, A6, B7 preferred; B8, B9, C contraindicated; metastases
      without cirrhosis not applicable (unknown when cirrhosis is not stated).
    - ``bilirubin``: < 2 mg/dL preferred; ≥ 2 mg/dL review.
    - ``platelets``: > 50 ×10^9/L preferred; ≤ 50 conditional (platelet transfusion).
    - ``bile_duct_distance`` (smallest over lesions): > 5 mm preferred; ≤ 5 mm conditional (biliary cooling).
    - A value that is missing: unknown.
    """
    lesions = case.lesions
    out = []
    if not lesions:
        out.append(Criterion("lesion_count", None, None, "unknown", "no lesions listed"))
        out.append(Criterion("max_diameter", None, "mm", "unknown", "no lesions listed"))
    else:
        n = len(lesions)
        out.append(
            Criterion(
                "lesion_count",
                n,
                None,
                *(("preferred", "1-3 lesions") if n <= 3 else ("review", "more than 3 lesions: staged sessions")),
            )
        )
        largest = max(lesion.diameter_mm for lesion in lesions)
        if largest <= 30:
            status, note = "preferred", "≤ 30 mm: optimal size"
        elif largest <= 50:
            status, note = "conditional", "over 30 mm and ≤ 50 mm: multi-probe strategy"
        else:
            status, note = "review", "over 50 mm: use with caution"
        out.append(Criterion("max_diameter", largest, "mm", status, note))

    diagnosis = case.diagnosis
    if diagnosis.type != "hcc" and diagnosis.cirrhosis is False:
        out.append(Criterion("child_pugh", None, None, "not_applicable", "metastases without cirrhosis"))
    elif diagnosis.type != "hcc" and diagnosis.cirrhosis is None:
        out.append(Criterion("child_pugh", None, None, "unknown", "applies if cirrhosis is present: not stated"))
    elif child_pugh is None:
        out.append(Criterion("child_pugh", None, None, "unknown", "Child-Pugh inputs missing"))
    elif child_pugh.points <= 7:
        out.append(Criterion("child_pugh", child_pugh.label, None, "preferred", "Child-Pugh A or B7"))
    else:
        out.append(
            Criterion(
                "child_pugh",
                child_pugh.label,
                None,
                "contraindicated",
                "Child-Pugh B8-C: high procedural risk; TACE or systemic therapy preferred",
            )
        )

    bilirubin = case.labs.bilirubin
    if bilirubin is None:
        out.append(Criterion("bilirubin", None, "mg/dL", "unknown", "not given"))
    else:
        value = bilirubin.canonical
        out.append(
            Criterion(
                "bilirubin",
                value,
                "mg/dL",
                *(("preferred", "< 2 mg/dL") if value < 2 else ("review", "≥ 2 mg/dL: compromised hepatic reserve")),
            )
        )

    platelets = case.labs.platelets
    if platelets is None:
        out.append(Criterion("platelets", None, "10^9/L", "unknown", "not given"))
    else:
        value = platelets.canonical
        out.append(
            Criterion(
                "platelets",
                value,
                "10^9/L",
                *(
                    ("preferred", "> 50 ×10^9/L")
                    if value > 50
                    else ("conditional", "≤ 50 ×10^9/L: platelet transfusion before the procedure")
                ),
            )
        )

    distances = [lesion.distance_to_bile_duct_mm for lesion in lesions]
    known = [d for d in distances if d is not None]
    if known and min(known) <= 5:
        out.append(
            Criterion("bile_duct_distance", min(known), "mm", "conditional", "≤ 5 mm: biliary cooling; biloma risk")
        )
    elif not lesions or None in distances:
        out.append(
            Criterion(
                "bile_duct_distance", None, "mm", "unknown", "distance to the bile duct not given for every lesion"
            )
        )
    else:
        out.append(Criterion("bile_duct_distance", min(known), "mm", "preferred", "> 5 mm"))
    return out


def verdict(statuses: list[str]) -> Verdict:
    """Any contraindicated → not_recommended; otherwise any review or unknown → mdt_review; otherwise any
    conditional → suitable_with_conditions; otherwise suitable (not_applicable criteria do not count)."""
    if "contraindicated" in statuses:
        return "not_recommended"
    if "review" in statuses or "unknown" in statuses:
        return "mdt_review"
    if "conditional" in statuses:
        return "suitable_with_conditions"
    return "suitable"


def _recommendations(
    case: Case,
    rows: dict[str, Criterion],
    bclc: Bclc | None,
    transplant: TransplantCriteria | None,
    tumour_volume_ml: float | None,
    cryoshock_tumour_volume_ml: float,
) -> list[Recommendation]:
    recs = []
    n = len(case.lesions)
    is_hcc = case.diagnosis.type == "hcc"
    if is_hcc and bclc.stage in ("0", "A"):
        recs.append(Recommendation("intent", "Curative intent.", f"HCC at BCLC stage {bclc.stage}", SEED))
    elif not is_hcc and 1 <= n <= 3:
        recs.append(
            Recommendation(
                "intent",
                "Disease-control intent (curative where all disease is treated).",
                f"oligometastatic liver disease: {n} lesion{'s' if n > 1 else ''}",
                SEED,
            )
        )
    if is_hcc and case.transplant_listed and transplant.milan:
        recs.append(
            Recommendation(
                "bridge_to_transplant",
                "Cryoablation as a bridge to transplant, keeping the patient within the Milan criteria.",
                "listed for transplant and within Milan",
                SOURCES["milan"],
            )
        )
    mid_sized = [lesion.id for lesion in case.lesions if 30 < lesion.diameter_mm <= 50]
    if is_hcc and (bclc.stage == "B" or mid_sized):
        reason = "intermediate HCC (BCLC B)" if bclc.stage == "B" else f"HCC of 3-5 cm ({', '.join(mid_sized)})"
        recs.append(
            Recommendation(
                "tace_then_cryoablation",
                "TACE followed by cryoablation (TACE reduces vascularity and the heat sink, and can downsize "
                "the lesion).",
                reason,
                SEED,
            )
        )
    near_vessel = [
        f"{lesion.id} at {lesion.distance_to_major_vessel_mm:g} mm"
        for lesion in case.lesions
        if lesion.distance_to_major_vessel_mm is not None and lesion.distance_to_major_vessel_mm <= 10
    ]
    if near_vessel:
        recs.append(
            Recommendation(
                "cryoablation_over_rfa",
                "Cryoablation rather than RFA: no heat-sink limit next to a major vessel, and the ice is visible.",
                f"within 10 mm of a major vessel: {', '.join(near_vessel)}",
                SEED,
            )
        )
    if rows["platelets"].status == "conditional":
        recs.append(
            Recommendation(
                "platelet_transfusion",
                "Platelet transfusion before the procedure.",
                f"platelets {rows['platelets'].value:g} ×10^9/L (≤ 50)",
                SOURCES["sir"],
            )
        )
    if rows["bile_duct_distance"].status == "conditional":
        recs.append(
            Recommendation(
                "biliary_cooling",
                "Biliary cooling to protect the duct; watch for biloma.",
                f"a lesion lies {rows['bile_duct_distance'].value:g} mm from a bile duct (≤ 5 mm)",
                SEED,
            )
        )
    if rows["child_pugh"].status == "contraindicated":
        recs.append(
            Recommendation(
                "hepatologist_review",
                "Hepatologist evaluation before any ablation; TACE or systemic therapy preferred.",
                f"Child-Pugh {rows['child_pugh'].value}",
                SEED,
            )
        )
    if n > 3:
        recs.append(Recommendation("staged_sessions", "Treat in staged sessions.", f"{n} lesions (more than 3)", SEED))
    if is_hcc and bclc.stage is not None:
        recs.append(
            Recommendation(
                "bclc_treatment",
                staging.BCLC_TREATMENT[bclc.stage]
                + " When that option is not feasible, the next stage's option is offered (treatment stage migration).",
                f"BCLC stage {bclc.stage}",
                SOURCES["bclc"],
            )
        )
    if tumour_volume_ml is not None and tumour_volume_ml > cryoshock_tumour_volume_ml:
        recs.append(
            Recommendation(
                "cryoshock_caution",
                "Caution: cryoshock risk rises with the frozen volume; consider staged sessions and watch for "
                "coagulopathy and multi-organ failure.",
                f"total tumour volume {tumour_volume_ml:.1f} ml > {cryoshock_tumour_volume_ml:g} ml",
                SOURCES["cryoshock"],
            )
        )
    return recs


def assess(case: Case, *, cryoshock_tumour_volume_ml: float = DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML) -> Assessment:
    """Assess a case for liver cryoablation.

    Parameters
    ----------
    case : Case
    cryoshock_tumour_volume_ml : float
        Total tumour volume (sum of spheres of each lesion's diameter) above which a cryoshock caution is
        given; a configurable, non-guideline threshold (`DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML`).

    Returns
    -------
    Assessment
        Scores (``None`` when their inputs are missing, named in ``missing_inputs``), HCC-only staging and
        transplant criteria (``None`` for metastases), the criteria, verdict and recommendations.
    """
    missing = _Missing()
    labs = case.labs
    child_pugh = _child_pugh(case, missing)
    albi = None
    if missing.check({"labs.bilirubin": labs.bilirubin, "labs.albumin": labs.albumin}):
        albi = scores.albi(bilirubin_umol_l=labs.bilirubin.to("umol/L"), albumin_g_l=labs.albumin.to("g/L"))
    meld = _meld(case, missing)

    diameters = [lesion.diameter_mm for lesion in case.lesions]
    diagnosis = case.diagnosis
    bclc = transplant = None
    if not case.lesions:
        missing.add("lesions")
    if diagnosis.type == "hcc":
        missing.check(
            {
                "patient.ecog": case.patient.ecog,
                "diagnosis.vascular_invasion": diagnosis.vascular_invasion,
                "diagnosis.extrahepatic_spread": diagnosis.extrahepatic_spread,
            }
        )
        bclc = staging.bclc(
            diameters,
            vascular_invasion=diagnosis.vascular_invasion,
            extrahepatic_spread=diagnosis.extrahepatic_spread,
            ecog=case.patient.ecog,
            child_pugh=child_pugh,
            ascites=case.clinical.ascites,
        )
        transplant = TransplantCriteria(
            milan=staging.milan(
                diameters,
                vascular_invasion=diagnosis.vascular_invasion,
                extrahepatic_spread=diagnosis.extrahepatic_spread,
            ),
            ucsf=staging.ucsf(
                diameters,
                vascular_invasion=diagnosis.vascular_invasion,
                extrahepatic_spread=diagnosis.extrahepatic_spread,
            ),
            up_to_seven=staging.up_to_seven(
                diameters,
                vascular_invasion=diagnosis.vascular_invasion,
                extrahepatic_spread=diagnosis.extrahepatic_spread,
            ),
        )
    elif diagnosis.cirrhosis is None:
        missing.add("diagnosis.cirrhosis")

    rows = criteria(case, child_pugh)
    for lesion_index, lesion in enumerate(case.lesions):
        if lesion.distance_to_bile_duct_mm is None:
            missing.add(f"lesions[{lesion_index}].distance_to_bile_duct_mm")
    missing.check({"labs.platelets": labs.platelets})
    tumour_volume_ml = sum(math.pi / 6 * d**3 for d in diameters) / 1000 if diameters else None
    by_id = {row.id: row for row in rows}
    return Assessment(
        case_id=case.case_id,
        diagnosis=diagnosis.type,
        child_pugh=child_pugh,
        albi=albi,
        meld=meld,
        bclc=bclc,
        transplant=transplant,
        total_tumour_volume_ml=tumour_volume_ml,
        criteria=rows,
        verdict=verdict([row.status for row in rows]),
        recommendations=_recommendations(case, by_id, bclc, transplant, tumour_volume_ml, cryoshock_tumour_volume_ml),
        missing_inputs=missing.paths,
    )
