"""Bulk submissions: labelled images read from a zip of an imagefolder, never extracted to disk."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .errors import MammoError
from .values import echoed

__all__ = ["BulkError", "DOCUMENTS", "DOCUMENT_NAMES", "zip_cases"]

MAX_FILES = 500
MAX_EXPANSION = 4  # a zip unpacks to at most this many times the per-file upload limit
# what an export carries beside its images (left out, and named in the receipt): a walk's zip with a
# readme.txt was refused whole
DOCUMENTS = frozenset({".txt", ".md", ".csv", ".tsv", ".json", ".xml", ".html", ".htm", ".pdf", ".rtf",
                       ".doc", ".docx", ".xls", ".xlsx", ".log", ".ini", ".db"})
DOCUMENT_NAMES = frozenset({"DICOMDIR", "README", "LICENSE", "LICENCE"})


class BulkError(MammoError, ValueError):
    """A zip that cannot be imported; the message says why."""


def zip_cases(
    path: Path, max_file_bytes: int, max_files: int = MAX_FILES, documents: list[str] | None = None
) -> Iterator[tuple[bytes, str, str]]:
    """Yield (image bytes, label, name) for each ``<label>/<file>`` member of a zip.

    The label is the member's parent folder name (so ``cases/benign/a.png`` is benign). Hidden
    files and ``__MACOSX`` are skipped, and so are the documents an export carries beside its
    images (a README, a CSV, a DICOMDIR: :data:`DOCUMENTS`), whose names are added to ``documents``;
    member names are never used as paths on disk. A zip may
    unpack to at most ``MAX_EXPANSION`` times ``max_file_bytes`` in all (a small zip of zeros can
    otherwise unpack to gigabytes); a damaged, encrypted or oddly compressed member is a BulkError.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise BulkError(f"not a readable zip file: {error}") from error
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and _wanted(m.filename)]
        found = [m.filename for m in members if _document(m.filename)]
        members = [m for m in members if not _document(m.filename)]
        if not members:
            named = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            only = f": only documents ({named})" if found else ""
            raise BulkError(f"the zip holds no images in label folders (such as benign/a.png){only}")
        if documents is not None:
            documents += found
        if len(members) > max_files:
            raise BulkError(f"the zip holds {len(members)} files; at most {max_files} per upload")
        total_limit, unpacked = MAX_EXPANSION * max_file_bytes, sum(m.file_size for m in members)
        if unpacked > total_limit:
            raise BulkError(f"the zip unpacks to {unpacked / 1e6:.1f} MB; at most {total_limit / 1e6:.1f} MB "
                            "per upload")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if len(parts) < 2:
                raise _member_error(member, "is not inside a label folder (such as benign/a.png)")
            if member.file_size > max_file_bytes:
                raise _member_error(member, f"is {member.file_size / 1e6:.1f} MB; the limit is "
                                            f"{max_file_bytes / 1e6:.0f} MB")
            # zipfile reads no more than a member's recorded size (a longer stream fails its CRC)
            yield _read_member(archive, member), parts[-2], parts[-1]


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's bytes, or a BulkError saying why they cannot be read."""
    try:
        with archive.open(member) as handle:
            return handle.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise _member_error(member, f"is damaged in the zip: {error}") from error
    except (RuntimeError, NotImplementedError) as error:  # encrypted; unsupported compression
        raise _member_error(member, f"cannot be read: {error}") from error


def _member_error(member: zipfile.ZipInfo, why: str) -> BulkError:
    """A refusal naming the member to the user, not in the log (a file name can name a patient)."""
    return BulkError(f"{echoed(member.filename, limit=120)} {why}",
                     logged=f"a member of the zip {why.replace(member.filename, '(its name)')}")


def _document(name: str) -> bool:
    """Whether a member is a document beside the images, not an image."""
    path = PurePosixPath(name)
    return path.suffix.lower() in DOCUMENTS or path.name.upper() in DOCUMENT_NAMES


def _wanted(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts)
