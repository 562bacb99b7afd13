"""Headers for every response that hands a stored or generated file to a browser.

A file we serve is data, never a page of our origin: the server decides its Content-Type (never the
uploader's filename or Content-Type), browsers must not sniff it (`nosniff`), a sandboxing CSP stops
any script or form should a browser render it anyway, and Content-Disposition carries a sanitized
filename (ASCII fallback plus RFC 5987 `filename*` for the rest).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# Nothing runs, nothing loads: for files (audio, PDF, CSV, transcripts).
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
# Our own HTML documents that style themselves inline and nothing else (the monthly statement).
HTML_DOCUMENT_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

MAX_FILENAME_CHARS = 150
OCTET_STREAM = "application/octet-stream"

_UNSAFE = re.compile(r"[\"'\\/:*?<>|;%`$]")
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._()+,=@\[\] -]")


def safe_filename(name: str | None, *, fallback: str = "download") -> str:
    """The last path part of `name` without control characters, quotes or shell/path punctuation."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name or fallback


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _ASCII_UNSAFE.sub("_", text)


def content_disposition(filename: str | None, *, inline: bool = False) -> str:
    """`attachment|inline; filename="ascii"` plus `filename*=UTF-8''...` when the name is not plain ASCII."""
    name = safe_filename(filename)
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    stem, ext = _ascii(stem).strip(" ."), _ascii(ext).strip(" .")
    if not stem.strip("_ "):
        stem = "download"
    ascii_name = f"{stem}.{ext}" if ext else stem
    header = f'{"inline" if inline else "attachment"}; filename="{ascii_name}"'
    if ascii_name != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def safe_download(response, *, filename: str | None, inline: bool = False, csp: str = DOWNLOAD_CSP):
    """Set nosniff, a sandboxing CSP and a sanitized Content-Disposition on `response`; returns it."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = csp
    response["Content-Disposition"] = content_disposition(filename, inline=inline)
    return response
