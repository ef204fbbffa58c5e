"""Error messages shown to users end in exactly one period, however the wrapped message ended (an
openai timeout says "Request timed out." and was printed as "Request timed out..")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pytest
import typer

from eval.cli import _guarded
from synthkg.cli import _guard
from synthkg.llm.base import LLMError, as_sentence


@pytest.mark.parametrize(
    ("message", "expected"),
    [("Request timed out.", "Request timed out."), ("Request timed out", "Request timed out."),
     ("timed out. \n", "timed out."), ("cut off..", "cut off.")],
)
def test_a_message_becomes_one_sentence(message: str, expected: str) -> None:
    assert as_sentence(message) == expected
    assert as_sentence(LLMError(message)) == expected


@pytest.mark.parametrize("guard", [_guard, _guarded], ids=["synthkg", "eval"])
def test_cli_llm_errors_end_in_one_period(
    guard: Callable[[Any], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def timeout() -> NoReturn:
        raise LLMError("endpoint failed after 3 attempts: Request timed out.")

    with pytest.raises(typer.Exit):
        guard(timeout)
    err = capsys.readouterr().err
    assert "Request timed out. Finished calls are cached" in err and ".." not in err
