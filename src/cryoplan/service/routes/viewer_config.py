"""What the case page's NiiVue viewer draws besides the CT: the segmented structures (each in its own colour,
with a legend), the plan's 0, −20 and −40 °C isotherms, the probe paths and the lesion to centre on.

Geometry in plan.json is in the DICOM patient frame (LPS); NiiVue's world space is the NIfTI's RAS, so
points are converted here, at the viewer's boundary (x and y change sign).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryoplan.imaging.anatomy import PRESETS

# Distinct colours (RGB) for the structures a liver plan shows; other structures take the next colour of
# `OTHER_COLOURS`. None is red, the viewer's crosshair colour.
STRUCTURE_COLOURS = {
    "liver": (176, 122, 82),
    "tumour": (255, 214, 0),
    "portal_vein": (0, 122, 255),
    "hepatic_vein": (128, 90, 255),
    "ivc": (64, 64, 255),
    "aorta": (255, 105, 180),
    "bile_duct": (0, 200, 120),
    "gallbladder": (60, 180, 75),
    "bone": (235, 235, 220),
    "rib": (235, 235, 220),
    "vertebra": (210, 210, 190),
    "lung": (150, 200, 255),
    "kidney": (255, 140, 0),
    "stomach": (200, 120, 200),
    "colon": (170, 110, 40),
    "small_bowel": (220, 170, 120),
    "duodenum": (200, 160, 100),
    "spleen": (150, 60, 150),
    "heart": (220, 80, 120),
    "other_vessel": (90, 160, 230),
}
STRUCTURE_LABELS = {"ivc": "IVC (inferior vena cava)", "small_bowel": "small bowel", "other_vessel": "other vessels"}
OTHER_COLOURS = [(70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255)]
# The isotherms a plan writes, each in a colour that is neither the crosshair's red nor a structure's.
ISOTHERM_COLOURMAPS = {0.0: "blue", -20.0: "green", -40.0: "violet"}
_ISOTHERM_FILE = re.compile(r"isotherm_(minus)?(\d+)c\.nii\.gz")


def structures(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The labelled structures of the case's segmentation: name, label values and colour, from its
    ``labels_map`` or ``label_preset`` (a value claimed by two structures goes to the first)."""
    imaging = document.get("imaging") or {}
    named: Mapping[str, Sequence[int]]
    if imaging.get("labels_map"):
        named = {name: (value,) for name, value in imaging["labels_map"].items()}
    elif imaging.get("label_preset") in PRESETS:
        named = PRESETS[imaging["label_preset"]]
    else:
        return []
    taken: set[int] = set()
    out: list[dict[str, Any]] = []
    spare = iter(OTHER_COLOURS * 10)
    for name, values in named.items():
        values = [int(v) for v in values if int(v) not in taken and 0 < int(v) < 65536]
        if not values:
            continue
        taken.update(values)
        colour = STRUCTURE_COLOURS.get(name) or next(spare)
        out.append(
            {
                "name": name,
                "label": STRUCTURE_LABELS.get(name, name.replace("_", " ")),
                "values": values,
                "colour": list(colour),
            }
        )
    return out


def _ras(point_lps: Sequence[float]) -> list[float]:
    return [-float(point_lps[0]), -float(point_lps[1]), float(point_lps[2])]


def isotherms(plan: dict[str, Any] | None, plan_job_id: int | None) -> list[dict[str, Any]]:
    """The plan's isotherm masks (file URL, temperature, colour map), warmest first."""
    if plan is None or plan_job_id is None:
        return []
    out: list[dict[str, Any]] = []
    for name in (plan.get("outputs") or {}).get("isotherms") or []:
        match = _ISOTHERM_FILE.fullmatch(name)
        if not match:
            continue
        celsius = -float(match.group(2)) if match.group(1) else float(match.group(2))
        lethal = celsius == (plan.get("settings") or {}).get("lethal_isotherm_c")
        out.append(
            {
                "url": f"/api/jobs/{plan_job_id}/files/{name}",
                "name": name,
                "isotherm_c": celsius,
                "label": f"{celsius:g} °C isotherm" + (" (lethal)" if lethal else ""),
                "colourmap": ISOTHERM_COLOURMAPS.get(celsius, "warm"),
            }
        )
    return sorted(out, key=lambda i: -i["isotherm_c"])


def probes(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each probe of the plan once (lesions planned together share probes): tip and entry in RAS mm."""
    if plan is None:
        return []
    seen: set[tuple[float, ...]] = set()
    out: list[dict[str, Any]] = []
    for lesion in plan.get("lesions") or []:
        for probe in lesion.get("probes") or []:
            tip, entry = probe.get("tip_lps_mm"), probe.get("entry_lps_mm")
            if not tip or not entry or tuple(tip) in seen:
                continue
            seen.add(tuple(tip))
            out.append({"name": f"P{len(out) + 1}", "type": probe.get("type"), "tip": _ras(tip), "entry": _ras(entry)})
    return out


def lesion_centre(plan: dict[str, Any] | None) -> list[float] | None:
    """The first lesion's centroid (RAS mm) as the images measure it, for the crosshair."""
    for lesion in (plan or {}).get("lesions") or []:
        centre = (lesion.get("imaging") or {}).get("centroid_lps_mm")
        if centre:
            return _ras(centre)
    return None


def viewer_config(document: dict[str, Any], plan: dict[str, Any] | None, plan_job_id: int | None) -> dict[str, Any]:
    """Everything the viewer script needs, as one JSON-ready mapping."""
    return {
        "schema_version": 1,
        "structures": structures(document),
        "isotherms": isotherms(plan, plan_job_id),
        "probes": probes(plan),
        "lesion_centre_ras_mm": lesion_centre(plan),
        "tumour_values": next((s["values"] for s in structures(document) if s["name"] == "tumour"), []),
    }
