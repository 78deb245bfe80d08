"""Uploads for the service tests: a zip archive in memory, a document posted to a case, the stored files."""

from __future__ import annotations

import io
import zipfile


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(service, case_id, name, data, purpose="record", role="coordinator"):
    return service.client.post(
        f"/api/cases/{case_id}/documents",
        headers=service.headers(role),
        files={"file": (name, data, "application/octet-stream")},
        data={"purpose": purpose},
    )


def stored_files(service) -> list[str]:
    folder = service.data_dir / "documents"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
