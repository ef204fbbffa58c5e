"""Reading JSONL files of pydantic records with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Row = TypeVar("Row", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    """A short, user-facing account of what is wrong with a record."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "record"
        missing = error["type"] == "missing"
        parts.append(f"missing field {where!r}" if missing else f"field {where!r}: {error['msg']}")
    return "; ".join(parts)


def read_jsonl(
    paths: Iterable[str | Path], row_type: type[Row], what: str, error: type[Exception] = ValueError
) -> list[Row]:
    """Every record of every file, in order. Raises `error` for a missing, unreadable or empty file, or a
    line that is not a valid `row_type` (naming file and line); blank lines are skipped."""
    rows: list[Row] = []
    for path in map(Path, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise error(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"{path}: cannot read ({exc})") from None
        count = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: malformed JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(data, dict):
                raise error(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            try:
                rows.append(row_type.model_validate(data))
            except ValidationError as exc:
                problem = describe_validation_error(exc)
                raise error(f"{path}:{number}: not a valid {what}: {problem}") from None
            count += 1
        if count == 0:
            raise error(f"{path}: empty file (no {what}s)")
    return rows
