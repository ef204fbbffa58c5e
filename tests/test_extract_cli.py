"""`synthkg extract` and synthkg.extract.corpus: a corpus to replayable records without a store, resumable
across stopped runs, with per-run stats; a line-format student answered by a rule-based fake (control
flow only), several documents in flight."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.config import Settings
from synthkg.extract.corpus import done_documents, extract_corpus
from synthkg.extract.distilled import DistilledExtractor, StudentPrompt
from synthkg.ingest import IngestOptions, ingest
from synthkg.llm.base import ChatResult, Message
from synthkg.loaders import load_documents
from synthkg.prompts import load_prompt
from tests.fakes import StreamingScriptedChatModel, write_corpus
from tests.retrieval.helpers import HashingEmbedder

DOCS = {f"d{i}.txt": f"Person{i} Alpha was born in City{i}. Person{i} Alpha wrote Book{i}." for i in range(6)}
_NAME = re.compile(r"\b[A-Z][a-z]+\d*(?: [A-Z][a-z]+\d*)*")


def lines_reply(call: object) -> str:
    """A line-format answer: the passage's capitalized names, the first linked to the others."""
    passage = next(m["content"] for m in reversed(call.messages) if m["role"] == "user")  # type: ignore[attr-defined]
    passage = passage.removeprefix("Passage:\n")
    names = list(dict.fromkeys(_NAME.findall(passage)))
    facts = "".join(f"{names[0]} | is linked to | {other}\n" for other in names[1:])
    return f"PERSON: {names[0]}\nOTHER: {'; '.join(names[1:])}\n> {passage}\n{facts}"


def lines_student() -> StudentPrompt:
    prompt = load_prompt("one_call_lines")
    return StudentPrompt(system_prompt=prompt.system, user_template=prompt.user, prompt=prompt.version_tag,
                         output_format="lines")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus", DOCS)


def test_records_resume_after_a_stop_and_replay_into_a_store(corpus: Path, tmp_path: Path) -> None:
    documents = load_documents([corpus]).documents
    out = tmp_path / "records.jsonl"
    stop = threading.Event()

    def stop_at_the_second_call(call: object) -> str:
        if len(fake.calls) == 2:
            stop.set()  # as Ctrl-C would, while this call is in flight: it still finishes
        return lines_reply(call)

    fake = StreamingScriptedChatModel(stop_at_the_second_call)
    extractor = DistilledExtractor(fake, prompt=lines_student())
    first = extract_corpus(documents, extractor, out, model="fake", prompt_versions=extractor.prompt_versions,
                           workers=1, stop=stop, progress=False)
    assert first["documents"] == 2 and first["stopped"] and len(done_documents(out)) == 2
    with out.open("a", encoding="utf-8") as fh:
        fh.write('{"document_id": "torn')  # a killed run's half line
    second = extract_corpus(documents, extractor, out, model="fake", prompt_versions={}, workers=3,
                            progress=False)
    assert second["documents"] == 4 and second["skipped_documents"] == 2 and second["failed_chunks"] == 0
    assert len(done_documents(out)) == 6 and len(fake.calls) == 6  # nothing extracted twice

    from synthkg.extract.replay import ReplayExtractor

    replay = ReplayExtractor.from_files([out])
    assert replay.document_ids == done_documents(out)  # what `eval --recorded-only` keeps
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    settings.store.path = tmp_path / "store"
    summary = ingest([corpus], settings=settings, extractor=replay, embedder=HashingEmbedder(),
                     options=IngestOptions(update_index=False), progress=False)
    assert summary.documents_ingested == 6 and not summary.failures and summary.relations == 12


def test_the_command_extracts_with_the_student_and_appends_stats(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = StreamingScriptedChatModel(lines_reply)
    fake.parallel = 3  # type: ignore[attr-defined]  # as a server engine with 3 slots says
    monkeypatch.setattr("synthkg.llm.factory.make_student_backend", lambda settings, cache_dir: fake)
    monkeypatch.setattr("synthkg.runtime.load_student_prompt", lambda path: lines_student())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "records.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["extract", str(corpus), "--out", str(out), "--limit", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "4 documents (4 chunks, 0 failed)" in result.output
    again = runner.invoke(app, ["extract", str(corpus), "--out", str(out), "--no-progress"])
    assert again.exit_code == 0 and "2 documents" in again.output and "4 already in" in again.output
    stats = json.loads(out.with_suffix(".stats.json").read_text())
    assert len(stats) == 2 and stats[0]["extractor"]["workers"] == 3
    assert stats[0]["extractor"]["prompt_versions"] == {"one_call": "one_call_lines@v1"}
    assert stats[0]["usage"]["one_call"]["calls"] == 4
    record = json.loads(out.read_text().splitlines()[0])
    assert record["teacher"]["model"] == "llamacpp:fake" and record["graph"]["quadruples"]
    # Another extractor's records of the first documents count as done: only the rest is extracted.
    later = tmp_path / "later.jsonl"
    first_two = tmp_path / "first-two.jsonl"
    first_two.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))
    rest = runner.invoke(app, ["extract", str(corpus), "--out", str(later), "--done", str(first_two),
                               "--no-progress"])
    assert rest.exit_code == 0 and "4 documents" in rest.output and "2 already in" in rest.output
    assert not done_documents(later) & done_documents(first_two)
    missing = runner.invoke(app, ["extract", str(corpus), "--out", str(later), "--done", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "no such records file" in missing.output


def test_the_command_refuses_what_it_cannot_do(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "r.jsonl")
    none = runner.invoke(app, ["extract", str(corpus), "--out", out, "--extractor", "none"])
    assert none.exit_code == 1 and "extracts nothing" in none.output
    empty = runner.invoke(app, ["extract", str(tmp_path / "missing"), "--out", str(tmp_path / "r.jsonl")])
    assert empty.exit_code == 1 and "no documents" in empty.output


def test_ingest_keeps_as_many_documents_in_flight_as_the_backend_decodes(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=10)

    class Parallel(StreamingScriptedChatModel):
        parallel = 3

        def chat(self, messages: list[Message], **kwargs: object) -> ChatResult:  # type: ignore[override]
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()  # passes only when three calls are in flight together
            try:
                return super().chat(messages, **kwargs)  # type: ignore[arg-type]
            finally:
                with lock:
                    in_flight -= 1

    backend = Parallel(lines_reply)
    monkeypatch.setattr("synthkg.llm.factory.make_student_backend", lambda settings, cache_dir: backend)
    monkeypatch.setattr("synthkg.runtime.load_student_prompt", lambda path: lines_student())
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    settings.store.path = tmp_path / "store"
    summary = ingest([corpus], settings=settings, embedder=HashingEmbedder(),
                     options=IngestOptions(extractor="distilled", update_index=False), progress=False)
    assert summary.documents_ingested == 6 and not summary.failures and peak == 3
    assert summary.store_totals["documents"] == 6 and summary.relations == 12
