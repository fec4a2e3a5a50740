"""Customer documents: what may be uploaded, told by the bytes, not by the name.

Threat model: an upload is hostile bytes from anyone with a write token (engineers,
service managers, the customer's own admins). A document is later downloaded by the
vendor's engineers and the customer's people, so it must not be a way to hand them active
content: HTML or SVG (script), an executable, or an archive posing as an office file.

- **Allowlist by content**: PDF, PNG, JPEG, Office Open XML (``.docx``, ``.xlsx``,
  ``.pptx``: a ZIP whose ``[Content_Types].xml`` names the matching main part and which
  holds no macros, ``vbaProject.bin``) and plain UTF-8 text (``.txt``, ``.csv``, ``.log``:
  no NUL or other control characters but tab, CR and LF, and no markup that a browser
  would sniff as HTML). The name's extension must be one of the sniffed type's, so a
  PDF named ``.docx`` (or an HTML page named ``.txt``) is refused.
- **Size**: at most :data:`MAX_BYTES` (the HTTP layer refuses a larger body before
  reading it); an empty file is refused.
- **Name**: a plain file name (no path, no control characters, at most 200 characters);
  downloads send it RFC 6266-encoded, as an attachment, with ``nosniff`` and a sandbox CSP.
- **Nothing half-written**: the bytes, type and SHA-256 are one INSERT after every check.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

__all__ = ["MAX_BYTES", "DocumentRefused", "Sniffed", "check_upload"]

MAX_BYTES = 10 * 1024 * 1024
_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,200}$")
_OOXML = {
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "word/document.xml"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xl/workbook.xml"),
    "pptx": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "ppt/presentation.xml",
    ),
}
_TEXT = {"txt": "text/plain", "csv": "text/csv", "log": "text/plain"}
_MARKUP = re.compile(rb"<\s*(html|script|svg|body|iframe|head|!doctype)", re.IGNORECASE)
ALLOWED = "PDF, PNG, JPEG, Word/Excel/PowerPoint (.docx, .xlsx, .pptx) or UTF-8 text (.txt, .csv, .log)"


class DocumentRefused(ValueError):
    """The upload is not an allowed document; the message says why and what is allowed."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    media_type: str
    extensions: tuple[str, ...]


def _ooxml(data: bytes) -> Sniffed | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" not in names or len(names) > 5000:
                return None
            if any(n.lower().endswith("vbaproject.bin") for n in names):
                raise DocumentRefused(
                    "the Office file contains macros (vbaProject.bin); save it without macros"
                )
            for ext, (media, main) in _OOXML.items():
                if main in names:
                    return Sniffed(media, (ext,))
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return None


def _text(data: bytes) -> Sniffed | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text) or "\x7f" in text:
        return None
    if _MARKUP.search(data[:4096]):
        return None
    return Sniffed("text/plain; charset=utf-8", tuple(_TEXT))


def sniff(data: bytes) -> Sniffed | None:
    """The document type the bytes are, or None when they are none of the allowed ones."""
    if data.startswith(b"%PDF-"):
        return Sniffed("application/pdf", ("pdf",))
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image/png", ("png",))
    if data.startswith(b"\xff\xd8\xff"):
        return Sniffed("image/jpeg", ("jpg", "jpeg"))
    if data.startswith(b"PK\x03\x04"):
        return _ooxml(data)
    return _text(data)


def check_upload(name: str, data: bytes) -> Sniffed:
    """The sniffed type of an allowed upload; DocumentRefused naming the problem otherwise."""
    if not _NAME.match(name) or name.strip() in ("", ".", ".."):
        raise DocumentRefused("name: a file name without a path or control characters, 1 to 200 characters")
    if not data:
        raise DocumentRefused("the file is empty")
    if len(data) > MAX_BYTES:
        raise DocumentRefused(
            f"the file is {len(data):,} bytes; a document may be at most {MAX_BYTES:,} bytes"
        )
    found = sniff(data)
    if found is None:
        raise DocumentRefused(f"the file's content is not an allowed document: upload {ALLOWED}")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in found.extensions:
        raise DocumentRefused(
            f"name: the content is {found.media_type.split(';')[0]}, so the name must end in "
            f"{' or '.join('.' + e for e in found.extensions)} (not {('.' + ext) if ext else 'no extension'})"
        )
    if ext == "csv":
        return Sniffed("text/csv; charset=utf-8", found.extensions)
    return found
