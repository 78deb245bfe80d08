"""Assessments as FHIR R4: a transaction Bundle with one DiagnosticReport per case and its scores as
Observations.

Each DiagnosticReport is coded in cryoplan's own code system (with its text); the scores are Observations
referenced from ``result``: Child-Pugh
(points, with the class and each component), ALBI (score and grade), MELD, MELD-Na and MELD 3.0, BCLC 2022,
the Milan, UCSF and up-to-seven criteria, and one Observation per selection criterion. A score that could
not be computed carries ``dataAbsentReason`` ``unknown``. The verdict is the report's ``conclusion``.

Resource ids are UUIDs derived from the case id and the item (UUID version 5), so the same assessment gives
the same document; entries are POSTed to their resource type, so a FHIR server accepts the bundle as a
transaction. A FHIR resource takes no fields of its own, so the schema version is a ``meta.tag``.

References
----------
HL7 FHIR Release 4 (4.0.1): Bundle (transaction), DiagnosticReport, Observation, and the
data-absent-reason code system. https://hl7.org/fhir/R4/
"""

from __future__ import annotations

import uuid
from typing import Any

from cryoplan.clinical.eligibility import Assessment

#: cryoplan's code system for the items of an assessment (scores, criteria, the assessment itself).
CODE_SYSTEM = "urn:cryoplan:assessment"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, CODE_SYSTEM)


def _concept(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}], "text": display}


def _observation(code: str, display: str, value: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    resource = {"resourceType": "Observation", "status": "final", "code": _concept(code, display)}
    if value is None:
        resource["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "unknown"}]}
    else:
        resource.update(value)
    resource.update(extra)
    return resource


def _component(code: str, display: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"code": _concept(code, display), **value}


def _score_observations(a: Assessment) -> list[dict[str, Any]]:
    cp = a.child_pugh
    observations = [
        _observation(
            "child_pugh",
            "Child-Pugh score",
            None
            if cp is None
            else {
                "valueInteger": cp.points,
                "interpretation": [{"text": f"class {cp.child_class} ({cp.label})"}],
                "component": [
                    _component(f"child_pugh_{name}", f"Child-Pugh {name} points", {"valueInteger": points})
                    for name, points in cp.components.items()
                ],
            },
        ),
        _observation(
            "albi",
            "ALBI score",
            None
            if a.albi is None
            else {
                "valueQuantity": {"value": round(a.albi.score, 4), "unit": "score", "system": UCUM, "code": "1"},
                "component": [_component("albi_grade", "ALBI grade", {"valueInteger": a.albi.grade})],
            },
        ),
    ]
    for code, display, value in (
        ("meld", "MELD", a.meld.meld),
        ("meld_na", "MELD-Na", a.meld.meld_na),
        ("meld_3", "MELD 3.0", a.meld.meld_3),
    ):
        observations.append(_observation(code, display, None if value is None else {"valueInteger": value}))
    if a.bclc is not None:
        stage = a.bclc.stage
        observations.append(
            _observation(
                "bclc",
                "BCLC stage (2022)",
                None if stage is None else {"valueCodeableConcept": {"text": f"BCLC {stage}"}},
                note=[{"text": a.bclc.reason}],
            )
        )
    if a.transplant is not None:
        for code, display, within in (
            ("milan", "Within the Milan criteria", a.transplant.milan),
            ("ucsf", "Within the UCSF criteria", a.transplant.ucsf),
            ("up_to_seven", "Within the up-to-seven criteria", a.transplant.up_to_seven),
        ):
            observations.append(_observation(code, display, None if within is None else {"valueBoolean": within}))
    for row in a.criteria:
        shown = "" if row.value is None else f"{row.value:g}" if isinstance(row.value, float) else str(row.value)
        text = f"{row.status}: {row.note}" + (f" (value {shown} {row.unit or ''})".rstrip() if shown else "")
        observations.append(
            _observation(
                f"criterion_{row.id}",
                f"Selection criterion {row.id.replace('_', ' ')}",
                {"valueString": row.status},
                note=[{"text": text.replace(" )", ")")}, *([{"text": row.source}] if row.source else [])],
            )
        )
    return observations


def assessment_bundle(assessments: list[Assessment]) -> dict[str, Any]:
    """The assessments as a FHIR R4 transaction Bundle (the parsed JSON).

    Parameters
    ----------
    assessments : list of Assessment
        One per case; the case id names each report (``identifier``) and its resource ids derive from it.

    Returns
    -------
    dict
        A Bundle of type ``transaction``: per case, a DiagnosticReport whose ``result`` references its
        Observations, every entry with a ``urn:uuid`` fullUrl and a POST request.
    """
    entries = []
    for number, a in enumerate(assessments):
        key = a.case_id or f"case-{number + 1}"

        def full_url(item: str, key: str = key) -> str:
            return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{key}/{item}')}"

        observations = _score_observations(a)
        urls = [full_url(o["code"]["coding"][0]["code"]) for o in observations]
        recommendations = "; ".join(f"{r.text} ({r.reason})" for r in a.recommendations)
        report = {
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": f"{CODE_SYSTEM}:case", "value": key}],
            "status": "final",
            "code": _concept("cryoablation_assessment", "Eligibility assessment for liver cryoablation"),
            "result": [{"reference": url} for url in urls],
            "conclusion": f"Verdict: {a.verdict.replace('_', ' ')}."
            + (f" Recommendations: {recommendations}." if recommendations else "")
            + (f" Missing inputs: {', '.join(a.missing_inputs)}." if a.missing_inputs else ""),
            "conclusionCode": [_concept(f"verdict_{a.verdict}", a.verdict.replace("_", " "))],
        }
        entries.append(_entry(full_url("report"), report))
        entries += [_entry(url, observation) for url, observation in zip(urls, observations, strict=True)]
    return {
        "resourceType": "Bundle",
        "meta": {"tag": [{"system": f"{CODE_SYSTEM}:schema_version", "code": "1"}]},
        "type": "transaction",
        "entry": entries,
    }


def _entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
