"""The case: patient, diagnosis, labs with units, clinical findings, lesions and imaging references.

A case file (YAML or JSON) is validated into `Case` by `parse_case` or `load_case`; every problem becomes
one `InputError` naming the field path (``labs.bilirubin.unit``, ``lesions[1].diameter_mm``) and what was
expected. Numbers are strict: ``"1.2"`` in quotes is a wrong type, not a number. Optional fields may be
absent; the assessment then reports the scores they feed as ``null`` and names the missing inputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails

from cryoplan import units
from cryoplan.errors import InputError

DiagnosisType = Literal[
    "hcc", "colorectal_metastasis", "breast_metastasis", "neuroendocrine_metastasis", "other_metastasis"
]
LiverDisease = Literal["hbv", "hcv", "alcohol", "masld", "pbc", "psc", "other", "none"]
PriorTreatment = Literal[
    "tace", "tare", "rfa", "mwa", "cryoablation", "resection", "sbrt", "systemic", "transplant", "other"
]
#: The label presets of `cryoplan.imaging.anatomy.PRESETS`.
LabelPreset = Literal["liver_tumour", "totalsegmentator", "totalsegmentator_mr"]
Millimetres = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
FilePath = Annotated[Path, Field(strict=False)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Patient(_Model):
    """Age in years, sex (used by MELD 3.0) and ECOG performance status (Oken et al. 1982)."""

    age: int | None = Field(default=None, ge=0, le=120)
    sex: Literal["male", "female"] | None = None
    ecog: int | None = Field(default=None, ge=0, le=5)


class Diagnosis(_Model):
    """The tumour type and the liver behind it.

    ``vascular_invasion`` is macrovascular (portal) invasion on imaging; ``liver_disease`` pbc or psc
    switches Child-Pugh to its cholestatic bilirubin bands.
    """

    type: DiagnosisType
    cirrhosis: bool | None = None
    liver_disease: LiverDisease | None = None
    vascular_invasion: bool | None = None
    extrahepatic_spread: bool | None = None

    @model_validator(mode="after")
    def _cirrhosis_needs_a_liver_disease(self) -> Diagnosis:
        if self.cirrhosis and self.liver_disease == "none":
            raise ValueError("liver_disease other than 'none' when cirrhosis is true (the two contradict)")
        return self


class LabValue(_Model):
    """A laboratory value with its unit; subclasses fix the analyte and so the accepted units."""

    analyte: ClassVar[str]
    value: float = Field(gt=0, allow_inf_nan=False)
    unit: str

    @field_validator("unit", mode="before")
    @classmethod
    def _accepted_unit(cls, unit: object) -> str:
        return units.normalise_unit(cls.analyte, unit)

    def to(self, unit: str) -> float:
        """The value in `unit` (an accepted unit of this analyte)."""
        return units.convert(self.analyte, self.value, self.unit, unit)

    @property
    def canonical(self) -> float:
        """The value in the analyte's canonical unit (mg/dL, g/dL, 10^9/L or mmol/L)."""
        return self.to(units.canonical_unit(self.analyte))


class Bilirubin(LabValue):
    analyte = "bilirubin"


class Albumin(LabValue):
    analyte = "albumin"


class Creatinine(LabValue):
    analyte = "creatinine"


class Sodium(LabValue):
    analyte = "sodium"


class Platelets(LabValue):
    analyte = "platelets"


class Labs(_Model):
    """Laboratory values. ``dialysis_twice_past_week`` also stands for 24 h of CVVHD in the past week;
    absent means no dialysis.

    INR and prothrombin time may both be given; they contradict each other when their Child-Pugh
    coagulation points are two bands apart (INR < 1.7 with more than 6 s prolonged, or INR > 2.3 with less
    than 4 s). Adjacent bands are accepted, since the INR and seconds bands are not exact equivalents.
    """

    bilirubin: Bilirubin | None = None
    albumin: Albumin | None = None
    inr: float | None = Field(default=None, ge=0.5, allow_inf_nan=False)
    prothrombin_time_prolonged_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    creatinine: Creatinine | None = None
    sodium: Sodium | None = None
    platelets: Platelets | None = None
    dialysis_twice_past_week: bool = False

    @model_validator(mode="after")
    def _coagulation_consistent(self) -> Labs:
        if self.inr is None or self.prothrombin_time_prolonged_s is None:
            return self
        pt = self.prothrombin_time_prolonged_s
        if (self.inr < 1.7 and pt > 6) or (self.inr > 2.3 and pt < 4):
            raise ValueError(
                "inr and prothrombin_time_prolonged_s in agreeing Child-Pugh bands "
                f"(inr {self.inr} and {pt} s prolonged contradict each other)"
            )
        return self


class Clinical(_Model):
    """Ascites (none, mild or controlled with diuretics, moderate to severe) and the West Haven grade
    (0-4) of hepatic encephalopathy."""

    ascites: Literal["none", "mild", "moderate_severe"] | None = None
    encephalopathy_grade: int | None = Field(default=None, ge=0, le=4)


class Lesion(_Model):
    """A liver lesion: largest diameter, Couinaud segment, and distances (mm) from its edge to the nearest
    bile duct and major vessel.

    A lesion measured on images carries ``resolution_mm``, the voxel size its lengths are known to within;
    only such a lesion may measure 0 mm (one voxel: smaller than the resolution). ``below_min_size`` marks
    a lesion measured below the minimum lesion size: listed, not planned.
    """

    id: str = Field(min_length=1)
    # absent from a typed lesion's dump: only measured lesions carry them
    resolution_mm: float | None = Field(default=None, gt=0, allow_inf_nan=False, exclude_if=lambda v: v is None)
    diameter_mm: float = Field(ge=0, le=300, allow_inf_nan=False)  # the largest livers span about 25 cm
    segment: int | None = Field(default=None, ge=1, le=8)
    distance_to_bile_duct_mm: Millimetres | None = None
    distance_to_major_vessel_mm: Millimetres | None = None
    below_min_size: bool = Field(default=False, exclude_if=lambda v: not v)

    @field_validator("diameter_mm")
    @classmethod
    def _positive_unless_below_resolution(cls, diameter: float, info: ValidationInfo) -> float:
        if diameter <= 0 and info.data.get("resolution_mm") is None:
            raise ValueError(
                "a diameter greater than 0 mm (0 only for a lesion measured smaller than one voxel, "
                "with its resolution_mm)"
            )
        return diameter


class Imaging(_Model):
    """References to the images of the case: an image with a label map, one mask per structure, or both.

    ``label_preset`` names a known labelling (``totalsegmentator``, ``totalsegmentator_mr``,
    ``liver_tumour``); ``labels_map`` maps structure names to label values. Masks given with a label map
    replace its structures (a tumour mask over a full organ label map). ``entries`` gives a probe entry
    point per lesion id, [x, y, z] in LPS millimetres. ``min_lesion_diameter_mm`` is the size below which
    a measured lesion is listed but not planned (5 mm when absent). Relative paths are resolved against the
    case file's folder by `load_case`.
    """

    image: FilePath
    series_uid: str | None = None
    labels: FilePath | None = None
    label_preset: LabelPreset | None = None
    labels_map: dict[str, int] | None = None
    masks: dict[str, FilePath] | None = None
    entries: dict[str, list[float]] | None = None
    min_lesion_diameter_mm: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None

    @field_validator("entries", mode="before")
    @classmethod
    def _entry_points(cls, entries: object) -> object:
        if not isinstance(entries, dict):
            return entries
        for lesion_id, point in entries.items():
            numbers = isinstance(point, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point
            )
            if not numbers or len(point) != 3:
                raise ValueError(f"entry points as [x, y, z] in LPS mm (entries.{lesion_id} is {point!r})")
        return {lesion_id: [float(v) for v in point] for lesion_id, point in entries.items()}

    @model_validator(mode="after")
    def _labels_for_a_preset(self) -> Imaging:
        if self.labels is None and (self.label_preset is not None or self.labels_map is not None):
            raise ValueError("labels (the label image) when label_preset or labels_map is given")
        return self

    def resolved(self, base: Path) -> Imaging:
        """This imaging section with relative paths made absolute against `base`."""

        def absolute(path: Path | None) -> Path | None:
            return None if path is None else (base / path).resolve()

        return self.model_copy(
            update={
                "image": absolute(self.image),
                "labels": absolute(self.labels),
                "masks": None if self.masks is None else {k: absolute(v) for k, v in self.masks.items()},
            }
        )


class Case(_Model):
    """A liver-tumour case, as read from a case file (``schema_version: 1``).

    ``case_id`` is optional; the CLI fills it from the file name when absent.
    """

    schema_version: Literal[1]
    case_id: str | None = None
    patient: Patient = Patient()
    diagnosis: Diagnosis
    labs: Labs = Labs()
    clinical: Clinical = Clinical()
    lesions: list[Lesion] = []
    transplant_listed: bool = False
    prior_treatments: list[PriorTreatment] = []
    imaging: Imaging | None = None

    @field_validator("lesions")
    @classmethod
    def _unique_lesion_ids(cls, lesions: list[Lesion]) -> list[Lesion]:
        seen = set()
        for lesion in lesions:
            if lesion.id in seen:
                raise ValueError(f"unique lesion ids (id {lesion.id!r} appears twice)")
            seen.add(lesion.id)
        return lesions


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _expected(error: ErrorDetails) -> str:
    message = error["msg"]
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if error["type"] == "missing":
        return "a value (the field is required)"
    if error["type"] == "extra_forbidden":
        return "no such field (check its spelling against the case-file format)"
    return message


def parse_case(data: object, source: str = "case") -> Case:
    """Validate a case document (the parsed YAML/JSON mapping) into a `Case`.

    Parameters
    ----------
    data : dict
        The case document.
    source : str
        What the document is, for the error message (a file name); the default ``"case"`` leaves field
        paths bare (``labs.bilirubin.unit``), any other source prefixes them (``a.yaml: labs...``).

    Raises
    ------
    InputError
        For the first problem found, naming its field path and what was expected.
    """
    prefix = "" if source == "case" else f"{source}: "
    if not isinstance(data, dict):
        raise InputError(source, "a case document (a mapping with schema_version, diagnosis, ...)", type(data).__name__)
    try:
        return Case.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        got = first.get("input") if first["type"] != "missing" else None
        if isinstance(got, (dict, list)):
            got = None
        raise InputError(prefix + (_field_path(first["loc"]) or "case"), _expected(first), got) from None


def read_document(path: str | Path) -> object:
    """Parse a case document: a ``.json`` file as JSON, any other as YAML (which reads JSON too).

    Raises
    ------
    InputError
        When the file cannot be read as UTF-8 text or does not parse, naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise InputError(str(path), "a readable UTF-8 YAML or JSON file", reason) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(str(path), f"valid JSON (error at line {error.lineno}: {error.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(str(path), "valid YAML" + (f" (error near line {mark.line + 1})" if mark else "")) from None


def load_case(path: str | Path) -> Case:
    """Read a YAML or JSON case file; relative imaging paths are resolved against the file's folder."""
    path = Path(path)
    case = parse_case(read_document(path), source=str(path))
    if case.imaging is not None:
        case = case.model_copy(update={"imaging": case.imaging.resolved(path.resolve().parent)})
    return case
