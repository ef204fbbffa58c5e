"""Credentials written inside URLs (bolt://user:PW@host, ...?api-key=K) never reach the terminal, error
messages or run records (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.config import Settings, redact_url
from synthkg.llm.base import LLMError
from synthkg.llm.openai_compat import OpenAICompatBackend
from synthkg.store.base import StoreError
from synthkg.store.neo4j import Neo4jStore

PW = "hunter2-DO-NOT-PRINT"
KEY = "k-DO-NOT-PRINT-42"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (f"bolt://neo4j:{PW}@db.example:7687", "bolt://neo4j:***@db.example:7687"),
        ("bolt://localhost:7687", "bolt://localhost:7687"),
        (f"https://llm.example/v1?api-key={KEY}&model=m", "https://llm.example/v1?api-key=***&model=m"),
        (f"http://h/v1?token={KEY}&Signature={KEY}", "http://h/v1?token=***&Signature=***"),
        (None, None),
    ],
)
def test_redact_url(url: str | None, safe: str | None) -> None:
    assert redact_url(url) == safe


def test_config_show_and_settings_records_hide_url_credentials(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEO4J_URI", f"bolt://neo4j:{PW}@db.example:7687")
    monkeypatch.setenv("SYNTHKG_LLM__BASE_URL", f"https://llm.example/v1?api-key={KEY}")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert PW not in result.output and KEY not in result.output
    shown = json.loads(result.output)
    assert shown["store"]["neo4j_uri"] == "bolt://neo4j:***@db.example:7687"
    assert PW not in json.dumps(Settings().masked())  # what run records store


def test_store_errors_never_quote_a_password_from_the_uri() -> None:
    with pytest.raises(StoreError) as error:
        store = Neo4jStore(f"bolt://neo4j:{PW}@127.0.0.1:1", "neo4j", "other-secret", connection_timeout=1.0)
        store.counts()
    message = str(error.value) + repr(error.value.__cause__ or "")
    assert PW not in message and "other-secret" not in message
    assert "127.0.0.1:1" in str(error.value)
    with pytest.raises(StoreError) as invalid:
        Neo4jStore(f"http://neo4j:{PW}@127.0.0.1:1", "neo4j", "x")
    assert PW not in str(invalid.value) and "invalid Neo4j URI" in str(invalid.value)


def test_llm_errors_never_quote_a_key_from_the_endpoint_url() -> None:
    backend = OpenAICompatBackend(f"http://127.0.0.1:1/v1?api-key={KEY}", "m", timeout_s=1, max_retries=0)
    with pytest.raises(LLMError) as error:
        backend.chat([{"role": "user", "content": "hi"}])
    assert KEY not in str(error.value) and "127.0.0.1:1" in str(error.value)
