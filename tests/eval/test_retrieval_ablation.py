"""The retrieval ablation: each stage runs its mode with its own knobs over one store, and the README table
is generated from its result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.bench_tables import ablation_table
from eval.benchmarks.retrieval_ablation import STAGES, Stage, run_stages
from synthkg.config import RetrievalParams
from tests.eval.test_runner import (
    TWO_HOP,
    GraphStoreAndIndex,
    graph_dataset,
    graph_store,  # noqa: F401  (fixture)
)
from tests.retrieval.corpus import DOCS


def test_a_stage_changes_only_its_knobs() -> None:
    base = RetrievalParams(hops=2)
    stage = Stage("x", "hippo", "adds", {"title_seed_weight": 0.0, "hippo.passage_reset": 0.0})
    params = stage.params(base)
    assert params.title_seed_weight == 0.0 and params.hippo.passage_reset == 0.0
    assert params.hops == 2 and params.hippo.top_facts == base.hippo.top_facts
    with pytest.raises(ValueError):
        Stage("bad", "graph", "adds", {"no_such_knob": 1}).params(base)


def test_every_stage_names_real_knobs_and_one_of_each_mode_is_as_shipped() -> None:
    base = RetrievalParams()
    shipped = {stage.mode for stage in STAGES if stage.params(base) == base}  # raises on an unknown knob
    assert shipped == {"bm25", "dense", "graph", "ppr", "hippo"}


def test_stages_run_over_one_store_with_ratios_to_dense(
    graph_store: GraphStoreAndIndex, tmp_path: Path  # noqa: F811
) -> None:
    dataset = graph_dataset(DOCS, [TWO_HOP])
    store, index = graph_store
    rows = run_stages(dataset, store, index, RetrievalParams(), progress=False)
    asked: list[str] = []
    filtered = run_stages(dataset, store, index, RetrievalParams(), progress=False,
                          fact_filter=lambda question, facts: asked.append(question) or [0])
    # The LLM fact-filter stage runs only with a filter given (in the benchmark: --fact-filter).
    needs_llm = [s.name for s in STAGES if s.overrides.get("hippo.fact_filter")]
    assert needs_llm == ["hippo: + LLM fact filter"]
    assert [r["stage"] for r in rows] == [s.name for s in STAGES if s.name not in needs_llm]
    assert [r["stage"] for r in filtered] == [s.name for s in STAGES]
    assert len(asked) == 2  # the warm-up query and the one question, for the filter stage only
    by_stage = {r["stage"]: r for r in rows}
    # The bridge passage shares no word with the question: BM25 misses it, the shipped graph finds it.
    assert by_stage["bm25"]["recall@5"] == 0.5 and by_stage["graph (shipped)"]["recall@5"] == 1.0
    dense = by_stage["dense"]["recall@5"]
    assert by_stage["graph (shipped)"]["x_dense_recall@5"] == round(1.0 / dense, 3)

    result = {"benchmark": "retrieval_ablation", "date": "2026-12-05T00:00:00+00:00", "dataset": "handmade",
              "questions": 1, "passages": len(DOCS), "rows": rows}
    (tmp_path / "a.json").write_text(json.dumps(result))
    (tmp_path / "old.json").write_text(json.dumps({**result, "passages": 2, "rows": rows[:1]}))
    table = ablation_table(tmp_path)
    assert table is not None
    assert table.startswith(f"handmade, 1 questions over {len(DOCS)} recorded passages (2026-12-05):")
    body = table.splitlines()[4:]
    assert len(body) == len(rows)  # the run over fewer passages is left out
    assert body[-1].startswith("| ppr (shipped) |")
