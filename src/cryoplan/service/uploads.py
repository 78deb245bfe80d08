"""Document uploads: the type is found from the content (never the name), must match the name's extension,
and is checked in depth: zips (no path traversal, no bomb, intact, every entry a DICOM file pydicom reads),
images (the decoded size their header declares within a limit, NRRD data inside the file itself). Files are
stored under generated names with their SHA-256, readable by the server's user only."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import math
import os
import secrets
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import nibabel
import pydicom

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
# The longest NRRD header read; real headers are well under 4 KiB.
_NRRD_HEADER_BYTES = 64 * 1024
# Bytes per sample of each NRRD type name (Teem NRRD file format, version 5, "type").
_NRRD_TYPE_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(
        (
            "short",
            "short int",
            "signed short",
            "signed short int",
            "int16",
            "int16_t",
            "ushort",
            "unsigned short",
            "unsigned short int",
            "uint16",
            "uint16_t",
        ),
        2,
    ),
    **dict.fromkeys(
        ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"), 4
    ),
    **dict.fromkeys(
        (
            "longlong",
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64",
            "int64_t",
            "ulonglong",
            "unsigned long long",
            "unsigned long long int",
            "uint64",
            "uint64_t",
            "double",
        ),
        8,
    ),
}
# NRRD fields that make a reader open another file (Teem NRRD format: "data file", detached headers).
_NRRD_FILE_FIELDS = ("datafile",)


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


def nifti_decoded_bytes(path: Path, compressed: bool) -> int:
    """The bytes of voxel data a NIfTI file's header declares (dimensions × bytes per voxel), read from the
    header alone, so a small file claiming a huge image is refused before anything is decompressed."""
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        head = handle.read(540)
    for header_class in (nibabel.Nifti1Header, nibabel.Nifti2Header):
        try:
            header = header_class.from_fileobj(io.BytesIO(head), check=False)  # type: ignore[no-untyped-call]  # nibabel is untyped
            shape = header.get_data_shape()
            itemsize: int = header.get_data_dtype().itemsize
        except Exception:  # noqa: BLE001  (nibabel raises several types for a header of the other version)
            continue
        if header.sizeof_hdr == len(header.binaryblock):
            return math.prod(int(n) for n in shape) * itemsize
    raise InputError("file", "a NIfTI-1 or NIfTI-2 header nibabel can read", "an unreadable header")


def nrrd_header(path: Path) -> tuple[dict[str, str], int]:
    """The fields of an NRRD header (names lower-cased), read from the first lines of the file only, and
    the offset at which its data begins."""
    with open(path, "rb") as handle:
        head = handle.read(_NRRD_HEADER_BYTES)
    end, blank = head.find(b"\n\n"), 2
    if b"\r\n\r\n" in head and (end < 0 or head.find(b"\r\n\r\n") < end):
        end, blank = head.find(b"\r\n\r\n"), 4
    if end < 0:
        raise InputError("file", f"an NRRD header ending within {_NRRD_HEADER_BYTES} bytes", "no end of header")
    fields = {}
    for line in head[:end].decode("ascii", errors="replace").splitlines()[1:]:
        if line.startswith("#") or ":=" in line.split(": ", 1)[0]:
            continue  # comments and key/value pairs carry nothing a reader acts on
        name, separator, value = line.partition(": ")
        if separator:
            fields[name.strip().lower()] = value.strip()
    return fields, end + blank


def _decompresses_within(handle: BinaryIO, encoding: str, limit: int) -> bool:
    """Whether the compressed stream from `handle` decompresses to at most `limit` bytes, decompressing
    at most one chunk past it (so a small file of compressed zeros cannot grow in memory)."""
    total = 0
    if encoding in ("gzip", "gz"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        while (chunk := handle.read(_CHUNK)) and not inflater.eof:
            while chunk and not inflater.eof:
                total += len(inflater.decompress(chunk, _CHUNK))
                chunk = inflater.unconsumed_tail
                if total > limit:
                    return False
        return True
    unpacker = bz2.BZ2Decompressor()
    while (chunk := handle.read(_CHUNK)) and not unpacker.eof:
        total += len(unpacker.decompress(chunk, _CHUNK))
        while not unpacker.eof and not unpacker.needs_input and total <= limit:
            total += len(unpacker.decompress(b"", _CHUNK))
        if total > limit:
            return False
    return True


def nrrd_decoded_bytes(path: Path) -> int:
    """The bytes of sample data an NRRD header declares (sizes × bytes per sample); refuses a header whose
    data lives in another file (``data file``), which would make the reader open a path the uploader chose."""
    fields, data_offset = nrrd_header(path)
    for name in fields:
        if name.replace(" ", "") in _NRRD_FILE_FIELDS:
            raise InputError("file", "an NRRD file holding its own data (no 'data file' field)", name)
    type_name = fields.get("type", "").lower()
    if type_name not in _NRRD_TYPE_BYTES:
        raise InputError("file", f"an NRRD sample type of {sorted(set(_NRRD_TYPE_BYTES))}", type_name or None)
    try:
        sizes = [int(n) for n in fields.get("sizes", "").split()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError("file", "an NRRD header with positive sizes", fields.get("sizes"))
    declared = math.prod(sizes) * _NRRD_TYPE_BYTES[type_name]
    encoding = fields.get("encoding", "raw").lower()
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        # Readers decompress the whole stream before comparing it with the sizes: bound it here.
        with open(path, "rb") as handle:
            handle.seek(data_offset)
            try:
                within = _decompresses_within(handle, encoding, declared + _CHUNK)
            except (zlib.error, OSError, EOFError, ValueError) as error:
                raise InputError("file", f"NRRD data that is valid {encoding}", str(error)) from None
        if not within:
            raise UploadTooLarge("file", f"NRRD data decompressing to the {declared} bytes its header declares")
    return declared


def check_image(path: Path, file_type: str, max_decoded_bytes: int) -> None:
    """Refuse an image whose header declares more than `max_decoded_bytes` of voxel data, or whose data
    lives in another file."""
    if file_type == "nrrd":
        decoded = nrrd_decoded_bytes(path)
    else:
        decoded = nifti_decoded_bytes(path, compressed=file_type == "nifti_gz")
    if decoded > max_decoded_bytes:
        raise UploadTooLarge(
            "file", f"an image of at most {max_decoded_bytes} bytes decoded", f"a header declaring {decoded} bytes"
        )


# What the file meta of every DICOM file names: what it holds and how it is encoded (PS3.10 §7.1). The
# dataset's own UIDs may be empty in exported series (the image reader derives them), so they are not required.
_DICOM_META_REQUIRED = ("MediaStorageSOPClassUID", "TransferSyntaxUID")


def check_dicom(data: bytes, name: str) -> None:
    """Refuse bytes that are not a whole DICOM Part 10 file: pydicom must read every element, find the file
    meta of `_DICOM_META_REQUIRED` and a data set, decode the pixel data of an image, and write the file
    back, as the referral packet does."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        for _element in dataset.iterall():  # converting each raw element is where malformed values fail
            pass
        missing = [key for key in _DICOM_META_REQUIRED if not dataset.file_meta.get(key)]
        if len(dataset) == 0:
            missing.append("a data set")
        # An image (a storage class of images, PS3.4 B.5) must carry its pixels; a file cut short lacks them.
        image = "Image Storage" in getattr(dataset.file_meta.get("MediaStorageSOPClassUID"), "name", "")
        if (image or "Rows" in dataset) and "PixelData" not in dataset:
            missing.append("PixelData")
        if "PixelData" in dataset:
            dataset.pixel_array  # noqa: B018  (decoding is the check)
        dataset.save_as(io.BytesIO())
    except Exception:  # noqa: BLE001  (pydicom raises many types on malformed input: each one refuses the file)
        raise InputError("file", "a zip holding only DICOM files pydicom can read whole", name) from None
    if missing:
        raise InputError("file", f"DICOM files naming {', '.join(missing)}", name)


def check_dicom_zip(path: Path, max_total_bytes: int, max_ratio: float) -> int:
    """Check a zip of a DICOM series without extracting it; returns the number of DICOM files.

    Refuses absolute or parent-relative entry names and symbolic links (path traversal, "zip slip"),
    entries whose declared expansion ratio or total size exceeds the limits, and entries whose declared
    sizes are false (read with a byte budget, so a forged header cannot hide a bomb), entries that fail
    their CRC, and any entry that is not a DICOM Part 10 file (128-byte preamble then "DICM", PS3.10 §7.1)
    that pydicom reads in full.
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
            data = bytearray()
            try:
                with archive.open(entry) as member:
                    while chunk := member.read(_CHUNK):
                        data += chunk
                        if len(data) > entry.file_size or len(data) > budget:
                            raise InputError(
                                "file", "zip entries no larger than their headers declare (zip bomb?)", entry.filename
                            )
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise InputError("file", "an intact zip archive", f"{entry.filename}: {error}") from None
            budget -= len(data)
            if data[128:132] != b"DICM":
                raise InputError("file", "a zip holding only DICOM Part 10 files", entry.filename)
            check_dicom(bytes(data), entry.filename)
        return len(entries)


def extracted_series(zip_path: Path) -> Path:
    """The folder of a stored DICOM zip's files (``<zip>.series/``), extracted on first use.

    The zip was checked whole at upload (`check_dicom_zip`); its files are written under numbered names (the
    series reader finds them by content), into a temporary folder renamed at the end, so a folder that
    exists is complete.
    """
    folder = zip_path.with_name(zip_path.name + ".series")
    if folder.is_dir():
        return folder
    partial = Path(tempfile.mkdtemp(prefix=f".{zip_path.name}.", suffix=".part", dir=zip_path.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for number, entry in enumerate(e for e in archive.infolist() if not e.is_dir()):
                (partial / f"{number:05d}.dcm").write_bytes(archive.read(entry))
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if not folder.is_dir():  # else another request extracted it meanwhile
            raise
    return folder


def sweep_partial_uploads(documents_dir: Path) -> int:
    """Remove the partial copies (``.*.part``) of uploads that a stopped server left; returns how many.
    Run at start, before any upload is received (one server process per data folder)."""
    swept = 0
    for partial in documents_dir.glob(".*.part"):
        if partial.is_dir():  # a series being extracted (`extracted_series`)
            shutil.rmtree(partial)
        else:
            partial.unlink(missing_ok=True)
        swept += 1
    return swept


def receive(
    source: BinaryIO,
    filename: str,
    documents_dir: Path,
    max_bytes: int,
    max_unzipped_bytes: int,
    max_zip_ratio: float,
    max_image_bytes: int,
) -> tuple[str, str, int, str]:
    """Copy an upload to a generated name in `documents_dir` and check it.

    Returns (stored name, file type, size in bytes, SHA-256 hex). On any failure the copy is removed and
    `InputError` (or `UploadTooLarge`) is raised naming the problem.
    """
    expected = declared_type(filename)
    documents_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A generated name, with the canonical extension of the type so that the image readers recognise it.
    stored_name = secrets.token_hex(16) + {v: k for k, v in EXTENSIONS.items()}[expected]
    partial = documents_dir / f".{stored_name}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
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
        elif found in ("nifti", "nifti_gz", "nrrd"):
            check_image(partial, found, max_image_bytes)
        os.replace(partial, documents_dir / stored_name)
    finally:
        partial.unlink(missing_ok=True)
    return stored_name, found, size, digest.hexdigest()
