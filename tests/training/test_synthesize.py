"""Teacher synthesis (`training.synthesize`) with a rule-based fake LLM: records, resumption, failures,
and replaying the records into a store (`synthkg.extract.replay`) gives the graph a live run gives."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import typer

from synthkg.config import Settings, StoreSettings
from synthkg.extract.multistep import MultiStepExtractor
from synthkg.extract.replay import ReplayError, ReplayExtractor
from synthkg.ingest import IngestOptions, ingest
from synthkg.llm.base import LLMError
from synthkg.loaders import load_documents
from synthkg.store.embedded import EmbeddedStore
from tests.fakes import write_corpus
from tests.retrieval.helpers import HashingEmbedder
from tests.rule_llm import POISON, RuleBasedLLM
from training.synthesize import _stage_budgets, synthesize

DOCS = {
    "a.txt": "Marie Curie was born in Warsaw. Marie Curie worked in Paris with Pierre Curie.",
    "b.txt": "Pierre Curie taught at the Sorbonne in Paris.",
    "c.txt": f"Albert Einstein visited {POISON} Zurich.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus", DOCS)


def _synthesize(corpus: Path, out: Path, llm: RuleBasedLLM) -> dict:
    documents = load_documents([corpus]).documents
    return synthesize(documents, MultiStepExtractor(llm), out, teacher_model="rule", progress=False)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_carry_the_graph_the_source_text_and_failures(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.jsonl"
    stats = _synthesize(corpus, out, RuleBasedLLM())
    assert (stats["documents"], stats["chunks"], stats["failed_chunks"]) == (3, 3, 1)
    records = {r["source_text"]: r for r in _lines(out)}
    assert set(records) == set(DOCS.values())
    good = records[DOCS["b.txt"]]
    assert good["failure"] is None and good["graph"]["quadruples"]
    assert good["teacher"]["prompt_versions"].keys() == {"decontextualize", "entities", "quadruples"}
    assert records[DOCS["c.txt"]]["failure"].startswith("entities:")


def test_a_rerun_skips_finished_documents_and_redoes_a_torn_line(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.jsonl"
    _synthesize(corpus, out, RuleBasedLLM())
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # a run killed mid-write
    llm = RuleBasedLLM()
    stats = _synthesize(corpus, out, llm)
    assert (stats["skipped_documents"], stats["documents"]) == (2, 1)
    assert len(llm.calls) <= 3  # only the torn document was extracted again


def test_a_backend_failure_loses_only_its_document_for_this_run(corpus: Path, tmp_path: Path) -> None:
    class Flaky(RuleBasedLLM):
        def chat(self, messages: list, **kwargs: object):  # type: ignore[no-untyped-def]
            if any("Sorbonne" in m["content"] for m in messages):
                raise LLMError("CUDA out of memory")
            return super().chat(messages, **kwargs)

    out = tmp_path / "teacher.jsonl"
    stats = _synthesize(corpus, out, Flaky())
    assert (stats["documents"], stats["backend_errors"]) == (2, 1)
    assert DOCS["b.txt"] not in {r["source_text"] for r in _lines(out)}
    stats = _synthesize(corpus, out, RuleBasedLLM())  # the next run does it
    assert (stats["skipped_documents"], stats["documents"]) == (2, 1)


def test_a_stop_request_leaves_the_remaining_documents_for_the_next_run(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.jsonl"
    stop = threading.Event()
    llm = RuleBasedLLM()
    respond = llm.chat

    def chat_then_stop(*args: Any, **kwargs: Any) -> Any:
        stop.set()  # as the signal handler does, during the first document's calls
        return respond(*args, **kwargs)

    llm.chat = chat_then_stop  # type: ignore[method-assign]
    documents = load_documents([corpus]).documents
    extractor = MultiStepExtractor(llm)
    stats = synthesize(documents, extractor, out, teacher_model="rule", stop=stop, progress=False)
    assert stats["stopped"] and stats["documents"] == 1 and len(_lines(out)) == 1  # its call in flight ends
    rest = _synthesize(corpus, out, RuleBasedLLM())
    assert (rest["documents"], rest["skipped_documents"], len(_lines(out))) == (2, 1, 3)


def test_replayed_records_build_the_same_graph_as_the_live_extractor(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.jsonl"
    _synthesize(corpus, out, RuleBasedLLM())

    def build(name: str, **kwargs: object) -> set[str]:
        settings = Settings(
            store=StoreSettings(path=tmp_path / name),
            cache_dir=tmp_path / f"{name}-cache",
            data_dir=tmp_path / f"{name}-data",
        )
        summary = ingest(
            [corpus],
            settings=settings,
            embedder=HashingEmbedder(),
            progress=False,
            options=IngestOptions(),
            **kwargs,
        )
        assert summary.documents_ingested == 3
        with EmbeddedStore(settings.store.path, read_only=True) as store:
            return {p.text for p in store.iter_propositions()}

    live = build("live", backend=RuleBasedLLM())
    replayed = build("replayed", extractor=ReplayExtractor.from_files([out]))
    assert live and replayed == live


def test_a_chunk_without_a_record_fails_as_missing() -> None:
    replay = ReplayExtractor([])
    result = replay.extract("Some text nobody extracted.")
    assert result.failure == "replay:missing" and not result.graph.quadruples


def test_bad_record_files_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"text": "x", "graph": {"entities": [], "quadruples": []}}\n{"text": "y"}\n')
    with pytest.raises(ReplayError, match=r"r\.jsonl:2: .*missing field 'graph'"):
        ReplayExtractor.from_files([bad])
    with pytest.raises(ReplayError, match="file not found"):
        ReplayExtractor.from_files([tmp_path / "nope.jsonl"])


def test_stage_budgets_are_parsed_and_checked() -> None:
    assert _stage_budgets(["entities=320", "quadruples=900"]) == {"entities": 320, "quadruples": 900}
    for bad in (["entities"], ["entity=3"], ["entities=x"]):
        with pytest.raises(typer.BadParameter):
            _stage_budgets(bad)
