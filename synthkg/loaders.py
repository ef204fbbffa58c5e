"""Text corpora -> Documents: .txt / .md files, .json (a list of {id, title, text} records or one record)
and .jsonl, given as files or directories (walked recursively, in sorted order).

A bad file or record never stops the rest: it becomes a `LoadError` with the path (and line or record
number) and a message that says what is wrong."""

from __future__ import annotations

import codecs
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkg.model import Document

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
RECORD_SUFFIXES = frozenset({".json", ".jsonl"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | RECORD_SUFFIXES

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_BYTES = 8192
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_RECORD_KEYS = ("id", "title", "text")


@dataclass(frozen=True)
class LoadError:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)


class _FileError(Exception):
    """Whole-file problem; becomes one LoadError."""


def load_documents(paths: Iterable[Path | str], limit: int | None = None) -> LoadResult:
    """Load every supported file under `paths`, stopping after `limit` documents.

    Directories are walked recursively in sorted order, skipping hidden entries and files whose
    extension is not supported; a file named explicitly with an unsupported extension is an error.
    A path reached twice is loaded once."""
    result = LoadResult()
    if limit is not None and limit <= 0:
        return result
    seen: set[Path] = set()
    for path in _iter_files(paths, result.errors):
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            for item in _load_file(path, resolved):
                if isinstance(item, LoadError):
                    result.errors.append(item)
                    continue
                result.documents.append(item)
                if limit is not None and len(result.documents) >= limit:
                    return result
        except _FileError as exc:
            result.errors.append(LoadError(path, str(exc)))
        except OSError as exc:
            result.errors.append(LoadError(path, f"cannot read: {exc.strerror or exc}"))
    return result


def _iter_files(paths: Iterable[Path | str], errors: list[LoadError]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, errors)
        elif not path.exists():
            errors.append(LoadError(path, "no such file or directory"))
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
            errors.append(LoadError(path, f"unsupported file type {path.suffix!r} (supported: {supported})"))
        else:
            yield path


def _walk(directory: Path, errors: list[LoadError]) -> Iterator[Path]:
    """Supported files in path order (a/y.txt before b.txt), symlinked directories not followed (no
    cycles)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        errors.append(LoadError(directory, f"cannot list directory: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), errors)
        elif entry.is_file() and Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
            yield Path(entry.path)


def _load_file(path: Path, resolved: Path) -> Iterator[Document | LoadError]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _load_jsonl(path, resolved)
        return
    text = _decode(path.read_bytes())
    if suffix == ".json":
        yield from _load_json(path, resolved, text)
        return
    if not text.strip():
        yield LoadError(path, "empty document, skipped")
        return
    title = path.stem
    if suffix != ".txt" and (heading := _ATX_HEADING.search(text)):
        title = heading.group(1).strip()
    yield Document.create(text, title=title, source=str(path), key=str(resolved))


def _encoding_of(head: bytes) -> str:
    """The encoding a BOM announces, else utf-8. NUL bytes without a BOM mean binary data."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head:
        raise _FileError("binary file (contains NUL bytes), not text")
    return "utf-8"


def _decode(data: bytes) -> str:
    encoding = _encoding_of(data[:_SNIFF_BYTES])
    if encoding == "utf-8" and b"\x00" in data:
        raise _FileError("binary file (contains NUL bytes), not text")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _FileError(_encoding_message(encoding, exc)) from None


def _encoding_message(encoding: str, exc: UnicodeDecodeError) -> str:
    shown = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
    return (
        f"not valid {shown} text (undecodable byte at offset {exc.start}); "
        "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
    )


def _load_json(path: Path, resolved: Path, text: str) -> Iterator[Document | LoadError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _FileError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict):
        yield _record_document(data, path, resolved, where="")
    elif isinstance(data, list):
        for index, record in enumerate(data):
            yield _record_document(record, path, resolved, where=f"record {index}")
    else:
        raise _FileError("expected a list of {id, title, text} records or one such record")


def _load_jsonl(path: Path, resolved: Path) -> Iterator[Document | LoadError]:
    # Streams line by line: a JSONL corpus can be far larger than memory allows as one string.
    with path.open("rb") as raw:
        encoding = _encoding_of(raw.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
        for lineno, line in enumerate(_text_lines(raw, encoding), 1):
            if isinstance(line, UnicodeDecodeError):
                yield LoadError(path, f"line {lineno}: {_encoding_message(encoding, line)}")
                continue
            if not line.strip():
                continue
            if "\x00" in line:
                raise _FileError(f"line {lineno}: binary data (NUL bytes), not text")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield LoadError(path, f"line {lineno}: invalid JSON at column {exc.colno}: {exc.msg}")
                continue
            yield _record_document(record, path, resolved, where=f"line {lineno}")


def _text_lines(raw: io.BufferedReader, encoding: str) -> Iterator[str | UnicodeDecodeError]:
    """Decoded lines; a UTF-8 line that does not decode comes as its error, and the next lines still
    load. UTF-16/32 files decode as one stream (their line breaks are not single bytes)."""
    if encoding.startswith("utf-8"):
        for number, data in enumerate(raw):
            try:
                yield data.decode(encoding if number == 0 else "utf-8")
            except UnicodeDecodeError as exc:
                yield exc
        return
    try:
        yield from io.TextIOWrapper(raw, encoding=encoding, newline=None)
    except UnicodeDecodeError as exc:
        raise _FileError(_encoding_message(encoding, exc)) from None


def _record_document(record: Any, path: Path, resolved: Path, *, where: str) -> Document | LoadError:
    prefix = f"{where}: " if where else ""
    if not isinstance(record, dict):
        return LoadError(path, f"{prefix}expected an object with 'text', got {type(record).__name__}")
    text = record.get("text")
    if text is None:
        return LoadError(path, f"{prefix}record has no 'text' field")
    if not isinstance(text, str):
        return LoadError(path, f"{prefix}'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        return LoadError(path, f"{prefix}empty document, skipped")
    title = record.get("title")
    title = "" if title is None else str(title)
    record_id = record.get("id")
    # Without an id the record's place in its file identifies it across versions.
    key = str(record_id) if record_id is not None else f"{resolved}#{where or 'record'}"
    metadata = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    return Document.create(text, title=title, source=str(path), key=key, metadata=metadata)
