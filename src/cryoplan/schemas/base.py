"""The base of every document model: it forbids keys it does not name and coerces nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Document(BaseModel):
    """A JSON object of a cryoplan document: unknown keys are refused (``additionalProperties: false`` in its
    JSON Schema) and values are checked without coercion, so a real output validates only if it has exactly the
    shape published."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
