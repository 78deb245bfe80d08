"""Document uploads: the type is found from the content (never the name), must match the name's extension,
and is checked in depth for zips (no path traversal, no bomb, DICOM files only); files are stored under
generated names with their SHA-256."""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import stat
import struct
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cryoplan.errors import InputError

# Extension of the uploaded name -> the file type its content must have.
EXTENSIONS = {
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".zip": "dicom_zip",
    ".nii": "nifti",
    ".nii.gz": "nifti_gz",
    ".nrrd": "nrrd",
}
PURPOSES = ("ct", "labels", "record")
_CHUNK = 1 << 20


class UploadTooLarge(InputError):
    """The upload exceeds the size limit (the API answers 413)."""


def declared_type(filename: str) -> str:
    """The file type the upload's name claims."""
    name = filename.lower()
    for extension in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(extension):
            return EXTENSIONS[extension]
    raise InputError("file", f"a file named *{', *'.join(EXTENSIONS)}", filename)


def _nifti_header_ok(header: bytes) -> bool:
    """NIfTI-1 (sizeof_hdr 348, magic n+1/ni1) or NIfTI-2 (540, n+2), either byte order."""
    if len(header) >= 348:
        for order in "<>":
            size = struct.unpack(order + "i", header[:4])[0]
            if size == 348 and header[344:347] in (b"n+1", b"ni1"):
                return True
            if size == 540 and header[4:7] in (b"n+2", b"ni2"):
                return True
    return False


def sniff_type(path: Path) -> str | None:
    """The file type found from the content's signature, or None."""
    with open(path, "rb") as handle:
        head = handle.read(540)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"PK\x03\x04"):
        return "dicom_zip"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(540)
        except (OSError, EOFError):
            return None
        return "nifti_gz" if _nifti_header_ok(inner) else None
    return "nifti" if _nifti_header_ok(head) else None


def check_dicom_zip(path: Path, max_total_bytes: int, max_ratio: float) -> int:
    """Check a zip of a DICOM series without extracting it; returns the number of DICOM files.

    Refuses absolute or parent-relative entry names and symbolic links (path traversal, "zip slip"),
    entries whose declared expansion ratio or total size exceeds the limits, and entries whose declared
    sizes are false (read with a byte budget, so a forged header cannot hide a bomb), and any entry that
    is not a DICOM Part 10 file (128-byte preamble then "DICM", PS3.10 §7.1).
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise InputError("file", "a readable zip archive", str(error)) from None
    with archive:
        entries = [e for e in archive.infolist() if not e.is_dir()]
        if not entries:
            raise InputError("file", "a zip holding DICOM files", "an empty zip")
        total = 0
        for entry in archive.infolist():
            name = entry.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
                raise InputError("file", "zip entries with relative names inside the archive", entry.filename)
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise InputError("file", "zip entries that are not symbolic links", entry.filename)
            total += entry.file_size
            if total > max_total_bytes:
                raise InputError("file", f"a zip expanding to at most {max_total_bytes} bytes", f"{total}+ bytes")
            if entry.file_size > max(entry.compress_size, 1) * max_ratio:
                raise InputError("file", f"zip entries compressed at most {max_ratio:g}:1 (zip bomb?)", entry.filename)
        budget = max_total_bytes
        for entry in entries:
            with archive.open(entry) as member:
                head = member.read(132)
                read = len(head)
                while chunk := member.read(_CHUNK):
                    read += len(chunk)
                    if read > entry.file_size or read > budget:
                        raise InputError(
                            "file", "zip entries no larger than their headers declare (zip bomb?)", entry.filename
                        )
            budget -= read
            if head[128:132] != b"DICM":
                raise InputError("file", "a zip holding only DICOM Part 10 files", entry.filename)
        return len(entries)


def receive(
    source: BinaryIO, filename: str, documents_dir: Path, max_bytes: int, max_unzipped_bytes: int, max_zip_ratio: float
) -> tuple[str, str, int, str]:
    """Copy an upload to a generated name in `documents_dir` and check it.

    Returns (stored name, file type, size in bytes, SHA-256 hex). On any failure the copy is removed and
    `InputError` (or `UploadTooLarge`) is raised naming the problem.
    """
    expected = declared_type(filename)
    documents_dir.mkdir(parents=True, exist_ok=True)
    # A generated name, with the canonical extension of the type so that the image readers recognise it.
    stored_name = secrets.token_hex(16) + {v: k for k, v in EXTENSIONS.items()}[expected]
    partial = documents_dir / f".{stored_name}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge("file", f"at most {max_bytes} bytes", f"more than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        found = sniff_type(partial)
        if found != expected:
            raise InputError("file", f"content that is {expected} as its name says", f"content of type {found}")
        if found == "dicom_zip":
            check_dicom_zip(partial, max_unzipped_bytes, max_zip_ratio)
        os.replace(partial, documents_dir / stored_name)
    finally:
        partial.unlink(missing_ok=True)
    return stored_name, found, size, digest.hexdigest()
