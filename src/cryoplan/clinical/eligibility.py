"""Eligibility for liver cryoablation: the selection criteria, the verdict and the recommendations.

`assess` turns a `Case` into an `Assessment`: the liver scores, HCC staging and transplant criteria, one
criterion per rule of the selection table (`RULES`: name, bands, status, source), a verdict, and the
recommendations of `RECOMMENDATIONS` that apply, each with its reason and source.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from cryoplan import units
from cryoplan.case import Albumin, Bilirubin, Case, Creatinine, Platelets, Sodium
from cryoplan.clinical import scores, staging
from cryoplan.clinical.scores import Albi, ChildPugh
from cryoplan.clinical.staging import Bclc, TransplantCriteria

Status = Literal["preferred", "conditional", "review", "contraindicated", "unknown", "not_applicable"]
Verdict = Literal["suitable", "suitable_with_conditions", "mdt_review", "not_recommended"]
_T = TypeVar("_T")

#: Total tumour volume (sum of spheres of each lesion's diameter) above which the assessment cautions about
#: cryoshock. Not a guideline threshold: no guideline gives one; 50 ml is a 46 mm sphere, about 150 ml frozen
#: once a 10 mm margin is added. Configurable through `assess`.
DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML = 50.0


@dataclass(frozen=True)
class Criterion:
    """One row of the selection table: its value (in `unit`), status, a note and the rule's source."""

    id: str
    value: float | int | str | None
    unit: str | None
    status: Status
    note: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "value": self.value,
            "unit": self.unit,
            "status": self.status,
            "note": self.note,
            "source": self.source,
        }


@dataclass(frozen=True)
class Recommendation:
    """A recommendation with the reason it applies to this case and its source."""

    id: str
    text: str
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "reason": self.reason, "source": self.source}


@dataclass(frozen=True)
class Meld:
    """MELD, MELD-Na and MELD 3.0 (each ``None`` when its inputs are missing)."""

    meld: int | None
    meld_na: int | None
    meld_3: int | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
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
    input_notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def optional(item: Any) -> dict[str, Any] | None:
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
            "input_notes": list(self.input_notes),
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
    bilirubin, albumin = labs.bilirubin, labs.albumin
    ascites, encephalopathy_grade = clinical.ascites, clinical.encephalopathy_grade
    # missing.check returned True: every input it was given is set.
    assert bilirubin is not None and albumin is not None and ascites is not None and encephalopathy_grade is not None

    def score(cholestatic: bool) -> ChildPugh:
        return scores.child_pugh(
            bilirubin_mg_dl=bilirubin.canonical,
            albumin_g_dl=albumin.canonical,
            ascites=ascites,
            encephalopathy_grade=encephalopathy_grade,
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
    assert labs.bilirubin is not None and labs.creatinine is not None  # missing.check returned True
    common: dict[str, Any] = dict(
        bilirubin_mg_dl=labs.bilirubin.canonical,
        inr=labs.inr,
        creatinine_mg_dl=labs.creatinine.canonical,
        dialysis=labs.dialysis_twice_past_week,
    )
    meld = scores.meld(**common)
    meld_na = (
        scores.meld_na(meld_score=meld, sodium_mmol_l=labs.sodium.canonical)
        if missing.check({"labs.sodium": labs.sodium}) and labs.sodium is not None
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
        # missing.check returned True: sodium, albumin and age are set (sex too from age 18).
        assert labs.sodium is not None and labs.albumin is not None and patient.age is not None
        meld_3 = scores.meld_3(
            **common,
            sodium_mmol_l=labs.sodium.canonical,
            albumin_g_dl=labs.albumin.canonical,
            sex=patient.sex,
            age=patient.age,
        )
    return Meld(meld, meld_na, meld_3)


@dataclass(frozen=True)
class Band:
    """An interval of a criterion's value, the status it gives and the note shown with it.

    The interval runs from `lower` to `upper`; each end is open unless marked closed (the defaults give
    ``(lower, upper]``). Infinite ends are allowed.
    """

    status: Status
    note: str
    lower: float = -math.inf
    upper: float = math.inf
    lower_closed: bool = False
    upper_closed: bool = True

    def contains(self, value: float) -> bool:
        above = value >= self.lower if self.lower_closed else value > self.lower
        below = value <= self.upper if self.upper_closed else value < self.upper
        return above and below


@dataclass(frozen=True)
class Reading:
    """What a rule reads from a case: the value shown, the number the bands are matched on, and whether
    every input behind it was given.

    `decided` is set when the rule's status does not come from the bands (a criterion that does not
    apply, or whose inputs are all missing), with `note` saying why.
    """

    value: float | int | str | None
    key: float | None = None
    complete: bool = True
    decided: Status | None = None
    note: str = ""


@dataclass(frozen=True)
class Rule:
    """One row of the selection table: a name, how to read the value, the bands, and the source."""

    id: str
    unit: str | None
    read: Callable[[Case, ChildPugh | None], Reading]
    bands: tuple[Band, ...]
    source: str
    incomplete_note: str = ""

    def apply(self, case: Case, child_pugh: ChildPugh | None) -> Criterion:
        """The criterion's status: the first band holding the value.

        A value read from incomplete inputs (some lesions without the distance) decides only when its band
        is not ``preferred``: the missing ones could be worse, so a preferred reading is ``unknown``.
        """
        reading = self.read(case, child_pugh)
        if reading.decided is not None:
            return Criterion(self.id, reading.value, self.unit, reading.decided, reading.note, self.source)
        key = reading.key
        assert key is not None, "a reading the bands decide carries the number they match"
        band = next(band for band in self.bands if band.contains(key))
        if not reading.complete and band.status == "preferred":
            return Criterion(self.id, None, self.unit, "unknown", self.incomplete_note, self.source)
        return Criterion(self.id, reading.value, self.unit, band.status, band.note, self.source)


def _read_lesion_count(case: Case, child_pugh: ChildPugh | None) -> Reading:
    if not case.lesions:
        return Reading(None, decided="unknown", note="no lesions listed")
    return Reading(len(case.lesions), len(case.lesions))


def _read_max_diameter(case: Case, child_pugh: ChildPugh | None) -> Reading:
    if not case.lesions:
        return Reading(None, decided="unknown", note="no lesions listed")
    largest = max(lesion.diameter_mm for lesion in case.lesions)
    return Reading(largest, largest)


def _read_child_pugh(case: Case, child_pugh: ChildPugh | None) -> Reading:
    diagnosis = case.diagnosis
    if diagnosis.type != "hcc" and diagnosis.cirrhosis is False:
        return Reading(None, decided="not_applicable", note="metastases without cirrhosis")
    if diagnosis.type != "hcc" and diagnosis.cirrhosis is None:
        return Reading(None, decided="unknown", note="applies if cirrhosis is present: not stated")
    if child_pugh is None:
        return Reading(None, decided="unknown", note="Child-Pugh inputs missing")
    return Reading(child_pugh.label, child_pugh.points)


def _lab_reader(analyte: str) -> Callable[[Case, ChildPugh | None], Reading]:
    def read(case: Case, child_pugh: ChildPugh | None) -> Reading:
        quantity = getattr(case.labs, analyte)
        if quantity is None:
            return Reading(None, decided="unknown", note="not given")
        return Reading(quantity.canonical, quantity.canonical)

    return read


def _read_bile_duct_distance(case: Case, child_pugh: ChildPugh | None) -> Reading:
    distances = [lesion.distance_to_bile_duct_mm for lesion in case.lesions]
    known = [d for d in distances if d is not None]
    if not known:
        return Reading(None, decided="unknown", note="distance to the bile duct not given for every lesion")
    return Reading(min(known), min(known), complete=None not in distances)


_CIRSE = (
    "Crocetti L, de Baère T, Pereira PL, Tarantino FP. CIRSE standards of practice on thermal ablation of "
    "liver tumours. Cardiovasc Intervent Radiol 2020;43:951-962"
)
_WANG = (
    "Wang C, Wang H, Yang W, et al. Multicenter randomized controlled trial of percutaneous cryoablation "
    "versus radiofrequency ablation in hepatocellular carcinoma. Hepatology 2015;61:1579-1590"
)
_EASL = (
    "European Association for the Study of the Liver. EASL clinical practice guidelines: management of "
    "hepatocellular carcinoma. J Hepatol 2018;69:182-236"
)
_PUGH = (
    "Pugh RN, Murray-Lyon IM, Dawson JL, et al. Transection of the oesophagus for bleeding oesophageal "
    "varices. Br J Surg 1973;60:646-649"
)

SOURCES = {
    "bclc": "Reig M, Forner A, Rimola J, et al. BCLC strategy for prognosis prediction and treatment "
    "recommendation: the 2022 update. J Hepatol 2022;76:681-693",
    "milan": "Mazzaferro V, Regalia E, Doci R, et al. Liver transplantation for the treatment of small "
    "hepatocellular carcinomas in patients with cirrhosis. N Engl J Med 1996;334:693-699",
    "sir": "Patel IJ, Rahim S, Davidson JC, et al. Society of Interventional Radiology consensus guidelines for "
    "the periprocedural management of thrombotic and bleeding risk in patients undergoing percutaneous "
    "image-guided interventions. J Vasc Interv Radiol 2019;30:1168-1184",
    "cirse": _CIRSE,
    "cryo_vs_rfa": _WANG,
    "easl": _EASL,
    "child_pugh": _PUGH,
    "esmo_crc": "Van Cutsem E, Cervantes A, Adam R, et al. ESMO consensus guidelines for the management of "
    "patients with metastatic colorectal cancer. Ann Oncol 2016;27:1386-1422",
    "tace_ablation": "Peng ZW, Zhang YJ, Chen MS, et al. Radiofrequency ablation with or without transcatheter "
    "arterial chemoembolization in the treatment of hepatocellular carcinoma: a prospective randomized "
    "trial. J Clin Oncol 2013;31:426-432 (TACE before ablation; the trial ablated with radiofrequency)",
    "cryoshock": "cryoplan default, not a guideline threshold; cryoshock in about 1 % of hepatic "
    "cryoablations: Seifert JK, Morris DL. World survey on the complications of hepatic and prostate "
    "cryotherapy. World J Surg 1999;23:109-114",
}

#: The selection criteria for liver cryoablation, in the order they are reported. Each band is an interval
#: of the criterion's value (points for Child-Pugh); the first band holding the value gives the status.
RULES: tuple[Rule, ...] = (
    Rule(
        "lesion_count",
        None,
        _read_lesion_count,
        (
            Band("preferred", "1-3 lesions", upper=3),
            Band("review", "more than 3 lesions: staged sessions", lower=3),
        ),
        _CIRSE,
    ),
    Rule(
        "max_diameter",
        "mm",
        _read_max_diameter,
        (
            Band("preferred", "≤ 30 mm: optimal size", upper=30),
            Band("conditional", "over 30 mm and ≤ 50 mm: multi-probe strategy", lower=30, upper=50),
            Band("review", "over 50 mm: use with caution", lower=50),
        ),
        f"{_WANG}; {_CIRSE}",
    ),
    Rule(
        "child_pugh",
        None,
        _read_child_pugh,
        (
            Band("preferred", "Child-Pugh A or B7", upper=7),
            Band(
                "contraindicated", "Child-Pugh B8-C: high procedural risk; TACE or systemic therapy preferred", lower=7
            ),
        ),
        f"{_EASL}; {_WANG}",
    ),
    Rule(
        "bilirubin",
        "mg/dL",
        _lab_reader("bilirubin"),
        (
            Band("preferred", "< 2 mg/dL", upper=2, upper_closed=False),
            Band("review", "≥ 2 mg/dL: compromised hepatic reserve", lower=2, lower_closed=True),
        ),
        _PUGH,
    ),
    Rule(
        "platelets",
        "10^9/L",
        _lab_reader("platelets"),
        (
            Band("conditional", "≤ 50 ×10^9/L: platelet transfusion before the procedure", upper=50),
            Band("preferred", "> 50 ×10^9/L", lower=50),
        ),
        SOURCES["sir"],
    ),
    Rule(
        "bile_duct_distance",
        "mm",
        _read_bile_duct_distance,
        (
            Band("conditional", "≤ 5 mm: biliary cooling; biloma risk", upper=5),
            Band("preferred", "> 5 mm", lower=5),
        ),
        _CIRSE,
        incomplete_note="distance to the bile duct not given for every lesion",
    ),
)


def criteria(case: Case, child_pugh: ChildPugh | None) -> list[Criterion]:
    """The selection criteria and their status, one per rule of `RULES`.

    - ``lesion_count``: 1-3 preferred; more than 3 review (staged sessions).
    - ``max_diameter``: ≤ 30 mm preferred; over 30 and ≤ 50 mm conditional (multi-probe); over 50 mm review.
    - ``child_pugh`` (HCC, or cirrhosis present): A5, A6, B7 preferred; B8, B9, C contraindicated; metastases
      without cirrhosis not applicable (unknown when cirrhosis is not stated).
    - ``bilirubin``: < 2 mg/dL preferred; ≥ 2 mg/dL review.
    - ``platelets``: > 50 ×10^9/L preferred; ≤ 50 conditional (platelet transfusion).
    - ``bile_duct_distance`` (smallest over lesions): > 5 mm preferred; ≤ 5 mm conditional (biliary cooling).
    - A value that is missing: unknown.

    References
    ----------
    Each rule's ``source`` names the guideline or trial behind it.
    """
    return [rule.apply(case, child_pugh) for rule in RULES]


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


@dataclass(frozen=True)
class Findings:
    """What the recommendation rules read: the case, its criteria by id, staging and tumour volume."""

    case: Case
    rows: dict[str, Criterion]
    bclc: Bclc | None
    transplant: TransplantCriteria | None
    tumour_volume_ml: float | None
    cryoshock_tumour_volume_ml: float

    @property
    def is_hcc(self) -> bool:
        return self.case.diagnosis.type == "hcc"

    @property
    def stage(self) -> str | None:
        return self.bclc.stage if self.bclc is not None else None


@dataclass(frozen=True)
class RecommendationRule:
    """A recommendation: its text, when it applies (`reason` gives the reason, or None when it does not
    apply) and its source. `text` may depend on the findings."""

    id: str
    text: str | Callable[[Findings], str]
    reason: Callable[[Findings], str | None]
    source: str

    def apply(self, findings: Findings) -> Recommendation | None:
        reason = self.reason(findings)
        if reason is None:
            return None
        text = self.text(findings) if callable(self.text) else self.text
        return Recommendation(self.id, text, reason, self.source)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def _curative(f: Findings) -> str | None:
    return f"HCC at BCLC stage {f.stage}" if f.is_hcc and f.stage in ("0", "A") else None


def _disease_control(f: Findings) -> str | None:
    n = len(f.case.lesions)
    return f"oligometastatic liver disease: {_plural(n, 'lesion')}" if not f.is_hcc and 1 <= n <= 3 else None


def _bridge(f: Findings) -> str | None:
    within = f.is_hcc and f.case.transplant_listed and f.transplant is not None and f.transplant.milan
    return "listed for transplant and within Milan" if within else None


def _tace_first(f: Findings) -> str | None:
    mid_sized = [lesion.id for lesion in f.case.lesions if 30 < lesion.diameter_mm <= 50]
    if not f.is_hcc or not (f.stage == "B" or mid_sized):
        return None
    return "intermediate HCC (BCLC B)" if f.stage == "B" else f"HCC of 3-5 cm ({', '.join(mid_sized)})"


def _near_vessel(f: Findings) -> str | None:
    near = [
        f"{lesion.id} at {lesion.distance_to_major_vessel_mm:g} mm"
        for lesion in f.case.lesions
        if lesion.distance_to_major_vessel_mm is not None and lesion.distance_to_major_vessel_mm <= 10
    ]
    return f"within 10 mm of a major vessel: {', '.join(near)}" if near else None


def _low_platelets(f: Findings) -> str | None:
    row = f.rows["platelets"]
    return f"platelets {row.value:g} ×10^9/L (≤ 50)" if row.status == "conditional" else None


def _near_duct(f: Findings) -> str | None:
    row = f.rows["bile_duct_distance"]
    return f"a lesion lies {row.value:g} mm from a bile duct (≤ 5 mm)" if row.status == "conditional" else None


def _poor_liver(f: Findings) -> str | None:
    row = f.rows["child_pugh"]
    return f"Child-Pugh {row.value}" if row.status == "contraindicated" else None


def _many_lesions(f: Findings) -> str | None:
    n = len(f.case.lesions)
    return f"{n} lesions (more than 3)" if n > 3 else None


def _bclc_stage(f: Findings) -> str | None:
    return f"BCLC stage {f.stage}" if f.is_hcc and f.stage is not None else None


def _bclc_treatment(f: Findings) -> str:
    assert f.stage is not None, "the rule applies only when _bclc_stage found a stage"
    return (
        staging.BCLC_TREATMENT[f.stage]
        + " When that option is not feasible, the next stage's option is offered (treatment stage migration)."
    )


def _large_volume(f: Findings) -> str | None:
    volume, limit = f.tumour_volume_ml, f.cryoshock_tumour_volume_ml
    if volume is None or volume <= limit:
        return None
    return f"total tumour volume {volume:.1f} ml > {limit:g} ml"


#: The recommendations, in the order they are given; each applies when its reason is not None.
RECOMMENDATIONS: tuple[RecommendationRule, ...] = (
    RecommendationRule("intent", "Curative intent.", _curative, SOURCES["bclc"]),
    RecommendationRule(
        "intent",
        "Disease-control intent (curative where all disease is treated).",
        _disease_control,
        SOURCES["esmo_crc"],
    ),
    RecommendationRule(
        "bridge_to_transplant",
        "Cryoablation as a bridge to transplant, keeping the patient within the Milan criteria.",
        _bridge,
        f"{SOURCES['milan']}; {SOURCES['bclc']}",
    ),
    RecommendationRule(
        "tace_then_cryoablation",
        "TACE followed by cryoablation (TACE reduces vascularity and the heat sink, and can downsize the lesion).",
        _tace_first,
        SOURCES["tace_ablation"],
    ),
    RecommendationRule(
        "cryoablation_over_rfa",
        "Cryoablation rather than RFA: no heat-sink limit next to a major vessel, and the ice is visible.",
        _near_vessel,
        f"{_CIRSE}; {_WANG}",
    ),
    RecommendationRule(
        "platelet_transfusion", "Platelet transfusion before the procedure.", _low_platelets, SOURCES["sir"]
    ),
    RecommendationRule("biliary_cooling", "Biliary cooling to protect the duct; watch for biloma.", _near_duct, _CIRSE),
    RecommendationRule(
        "hepatologist_review",
        "Hepatologist evaluation before any ablation; TACE or systemic therapy preferred.",
        _poor_liver,
        _EASL,
    ),
    RecommendationRule("staged_sessions", "Treat in staged sessions.", _many_lesions, _CIRSE),
    RecommendationRule(
        "bclc_treatment",
        _bclc_treatment,
        _bclc_stage,
        SOURCES["bclc"],
    ),
    RecommendationRule(
        "cryoshock_caution",
        "Caution: cryoshock risk rises with the frozen volume; consider staged sessions and watch for "
        "coagulopathy and multi-organ failure.",
        _large_volume,
        SOURCES["cryoshock"],
    ),
)


def recommendations(findings: Findings) -> list[Recommendation]:
    """The recommendations of `RECOMMENDATIONS` that apply, in table order."""
    applied = (rule.apply(findings) for rule in RECOMMENDATIONS)
    return [rec for rec in applied if rec is not None]


@dataclass(frozen=True)
class LabBound:
    """A lab value known only as a bound (``<0.2`` mg/dL): the analyte, the comparator, the value, its unit.

    `unit` is one of the analyte's accepted units, None for the INR (a ratio).
    """

    analyte: str
    comparator: Literal["<", "<=", ">", ">="]
    value: float
    unit: str | None

    def text(self, canonical: bool = False) -> str:
        if canonical and self.unit is not None:
            value = units.convert(self.analyte, self.value, self.unit, units.canonical_unit(self.analyte))
            return f"{self.comparator}{value:.4g} {units.canonical_unit(self.analyte)}"
        return f"{self.comparator}{self.value:g}" + (f" {self.unit}" if self.unit else "")

    def extremes(self) -> tuple[float, float]:
        """The values at the bound and at the far end of what it allows (the far end a millionth or a
        million times the bound; the INR no lower than 0.5). A bound that is not closed is approached to
        one part in 10^9, so that ``<2`` stays below a band edge at 2."""
        if self.comparator in ("<", "<="):
            near = self.value if self.comparator == "<=" else self.value * (1 - 1e-9)
            far = min(near, 0.5) if self.analyte == "inr" else self.value * 1e-6
        else:
            near = self.value if self.comparator == ">=" else self.value * (1 + 1e-9)
            far = self.value * 1e6
        return near, far


_LAB_TYPES = {kind.analyte: kind for kind in (Bilirubin, Albumin, Creatinine, Sodium, Platelets)}


def _with_labs(case: Case, values: dict[str, float], bounds: Mapping[str, LabBound]) -> Case:
    """The case with the bounded labs set to `values` (in each bound's unit)."""
    update: dict[str, object] = {}
    for name, value in values.items():
        unit = bounds[name].unit
        if name == "inr":
            update[name] = value
        else:
            assert unit is not None, "only the INR bound has no unit"
            update[name] = _LAB_TYPES[name](value=value, unit=unit)
    return case.model_copy(update={"labs": case.labs.model_copy(update=update)})


def assess(
    case: Case,
    *,
    cryoshock_tumour_volume_ml: float = DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML,
    lab_bounds: Mapping[str, LabBound] | None = None,
    imaging_flags: list[str] | None = None,
) -> Assessment:
    """Assess a case for liver cryoablation.

    Parameters
    ----------
    case : Case
    cryoshock_tumour_volume_ml : float
        Total tumour volume (sum of spheres of each lesion's diameter) above which a cryoshock caution is
        given; a configurable, non-guideline threshold (`DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML`).
    lab_bounds : mapping of analyte to LabBound, optional
        Labs known only as bounds (a FHIR comparator), in place of the case's values. The case is assessed
        at every corner of the bounds (each lab at its bound and at the far end); a score, stage, criterion
        or recommendation stands when every corner gives the same, and is otherwise left undetermined, the
        bound named in ``missing_inputs``. Each score and band is monotone in each lab with the others
        held fixed, so its extremes over the bounds lie at corners, and agreeing corners mean the result
        holds over the whole range: ``<0.2`` mg/dL bilirubin scores 1 Child-Pugh point.
    imaging_flags : list of str, optional
        Disagreements between typed and measured lesions
        (`cryoplan.imaging.case_images.case_with_measured_lesions`), carried into the assessment.

    Returns
    -------
    Assessment
        Scores (``None`` when their inputs are missing, named in ``missing_inputs``), HCC-only staging and
        transplant criteria (``None`` for metastases), the criteria, verdict and recommendations. Lesions
        measured below the minimum lesion size (``below_min_size``) are left out and named in
        ``input_notes``.
    """
    small = [lesion for lesion in case.lesions if lesion.below_min_size]
    flags = list(imaging_flags or [])
    notes = [
        f"lesion {lesion.id} ({lesion.diameter_mm:g} mm measured) is below the minimum lesion size: listed, "
        "not assessed or planned"
        for lesion in small
    ]
    if small:
        case = case.model_copy(update={"lesions": [lesion for lesion in case.lesions if not lesion.below_min_size]})
    if not lab_bounds:
        return replace(_assess_values(case, cryoshock_tumour_volume_ml), imaging_flags=flags, input_notes=notes)
    names = list(lab_bounds)
    corners = itertools.product(*(lab_bounds[name].extremes() for name in names))
    results = [
        _assess_values(_with_labs(case, dict(zip(names, corner, strict=True)), lab_bounds), cryoshock_tumour_volume_ml)
        for corner in corners
    ]
    return replace(_agreeing(results[0], results[1:], lab_bounds), imaging_flags=flags, input_notes=notes)


def _agreeing(base: Assessment, others: list[Assessment], bounds: Mapping[str, LabBound]) -> Assessment:
    """`base` (every lab at its bound) with what the other corners do not agree on left undetermined."""
    undetermined = False

    def agreed(get: Callable[[Assessment], _T]) -> _T | None:
        nonlocal undetermined
        value = get(base)
        if all(get(other) == value for other in others):
            return value
        undetermined = True
        return None

    child_pugh, albi = agreed(lambda a: a.child_pugh), agreed(lambda a: a.albi)
    meld = Meld(agreed(lambda a: a.meld.meld), agreed(lambda a: a.meld.meld_na), agreed(lambda a: a.meld.meld_3))
    bclc = base.bclc
    if bclc is not None and any(other.bclc != bclc for other in others):
        undetermined = True
        bclc = replace(
            bclc, stage=None, reason=f"undetermined: a lab given as a bound spans several stages; {bclc.reason}"
        )
    rows = []
    shown = {name: bound.text(canonical=True).split(" ")[0] for name, bound in bounds.items()}
    for index, row in enumerate(base.criteria):
        row = replace(row, value=shown.get(row.id, row.value))
        if any(other.criteria[index].status != row.status for other in others):
            undetermined = True
            row = replace(row, status="unknown", note=f"given as a bound ({row.value}) that spans several bands")
        rows.append(row)
    everywhere = set.intersection(*({(r.id, r.text) for r in other.recommendations} for other in others))
    missing = list(base.missing_inputs)
    if undetermined:
        missing += [f"labs.{name} (a bound: {bound.text()})" for name, bound in bounds.items()]
    return replace(
        base,
        child_pugh=child_pugh,
        albi=albi,
        meld=meld,
        bclc=bclc,
        criteria=rows,
        verdict=verdict([row.status for row in rows]),
        recommendations=[r for r in base.recommendations if (r.id, r.text) in everywhere],
        missing_inputs=missing,
    )


def _assess_values(case: Case, cryoshock_tumour_volume_ml: float) -> Assessment:
    """The assessment of a case whose labs are values."""
    missing = _Missing()
    labs = case.labs
    child_pugh = _child_pugh(case, missing)
    albi = None
    if missing.check({"labs.bilirubin": labs.bilirubin, "labs.albumin": labs.albumin}):
        assert labs.bilirubin is not None and labs.albumin is not None  # missing.check returned True
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
        recommendations=recommendations(
            Findings(case, by_id, bclc, transplant, tumour_volume_ml, cryoshock_tumour_volume_ml)
        ),
        missing_inputs=missing.paths,
    )
