"""Models of the imaging documents: ``cryoplan inspect`` (inspect.json) and the lesion measurements it shares
with plan.json."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cryoplan.schemas.base import Document

Mm = float | None


class ImageSummary(Document):
    """The image's grid: voxels per axis, spacing, orientation code (e.g. ``LPS``) and modality."""

    shape: list[int] = Field(min_length=3, max_length=3)
    spacing_mm: list[float] = Field(min_length=3, max_length=3)
    orientation: str
    modality: str | None


class LesionMeasurementDocument(Document):
    """One connected tumour component measured on the image (`cryoplan.imaging.anatomy.LesionMeasurement`)."""

    id: str
    voxel_count: int = Field(ge=1)
    volume_ml: float = Field(ge=0)
    max_diameter_mm: Mm
    axial_diameter_mm: Mm
    centroid_lps_mm: list[Mm] = Field(min_length=3, max_length=3)
    couinaud_segment: int | None = Field(ge=1, le=8)
    distance_to_bile_duct_mm: Mm
    distance_to_major_vessel_mm: Mm
    nearest_vessel: str | None
    distance_to_vessels_mm: dict[str, Mm]
    heat_sink: bool
    heat_sink_vessel: str | None
    heat_sink_vessel_calibre_mm: Mm
    resolution_mm: Mm = Field(description="the image's resolution limit on the diameters")
    below_min_size: bool = Field(description="smaller than the minimum lesion diameter: listed, not planned")


class StructureVolume(Document):
    volume_ml: float = Field(ge=0)


class BodySummary(Document):
    """The body model: the sides the field of view cuts and the path-relevant organs no label gives."""

    modality: str
    cut_sides: list[str]
    unknown_structures: list[str]


class ImageWarningDocument(Document):
    """A limit of the image the plan and the report state (`cryoplan.imaging.body.ImageWarning`)."""

    code: str
    message: str


class InspectionDocument(Document):
    """``cryoplan inspect --format json`` and inspect.json."""

    schema_version: Literal[1]
    image: ImageSummary
    liver_volume_ml: float | None
    total_tumour_volume_ml: float = Field(ge=0)
    min_lesion_diameter_mm: float = Field(ge=0)
    lesions: list[LesionMeasurementDocument]
    structures: dict[str, StructureVolume] = Field(description="volume of each structure the labels give")
    body: BodySummary | None
    image_warnings: list[ImageWarningDocument]
    warnings: list[str] = Field(description="the readers' notes: resampling, header conflicts, repaired UIDs")
