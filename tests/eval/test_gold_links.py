"""Whether the graph links a question's gold passages into one chain from the question (eval/gold_links.py),
over the hand-written 2-hop store, and the README table generated from the benchmark's result file."""

from __future__ import annotations

import json
from pathlib import Path

from eval.bench_tables import gold_links_table
from eval.datasets import Question
from eval.gold_links import GoldLinks, link_gold_passages, summarize
from tests.eval.test_runner import (
    TWO_HOP,
    GraphStoreAndIndex,
    graph_dataset,
    graph_store,  # noqa: F401  (fixture)
)
from tests.retrieval.corpus import DOCS


def test_links_follow_shared_entities_from_what_the_question_names(
    graph_store: GraphStoreAndIndex,  # noqa: F811
) -> None:
    questions = [
        TWO_HOP,  # names Xanadu Nights; its passage shares Yorick Bellamy with the bridge passage
        # Lisbon shares Lisbon and Portugal with Yorick Bellamy's passage, but the question names neither.
        Question(id="q2", question="Which ocean lies beside the city where the painter was born?",
                 answer="Atlantic Ocean", supporting_passage_ids=["Yorick Bellamy", "Lisbon"], type="2hop"),
        # Named, but the other gold passage shares no entity with it: a broken chain.
        Question(id="q3", question="Who directed Xanadu Nights, and who wrote Harbour Lights?",
                 answer="x", supporting_passage_ids=["Xanadu Nights", "Harbour Lights", "Lisbon"],
                 type="3hop"),
        Question(id="q4", question="Anything?", answer="y"),  # no gold passages: not scored
    ]
    store, index = graph_store
    links = link_gold_passages(graph_dataset(DOCS, questions), store, index)
    assert links == [
        GoldLinks("q1", None, gold=2, with_facts=2, named=1, reachable=2),
        GoldLinks("q2", "2hop", gold=2, with_facts=2, named=0, reachable=0),
        GoldLinks("q3", "3hop", gold=3, with_facts=3, named=2, reachable=2),
    ]
    assert [link.whole_chain for link in links] == [True, False, False]
    # A synonym edge (names that embed alike) links passages as a shared entity does.
    scotland, lisbon = (store.find_entities(name)[0].id for name in ("Scotland", "Lisbon"))
    linked = link_gold_passages(graph_dataset(DOCS, questions[2:3]), store, index,
                                synonyms={scotland: {lisbon}, lisbon: {scotland}})
    assert linked == [GoldLinks("q3", "3hop", gold=3, with_facts=3, named=2, reachable=3)]
    summary = summarize(links, {"dense": {"q1": 0.5, "q2": 1.0, "q3": 0.0}, "hippo": {"q1": 1.0}})
    assert summary["questions"] == 3 and summary["gold_passages"] == 7 and summary["gold_with_facts"] == 1.0
    assert summary["questions_with_a_named_gold_passage"] == 0.667
    assert summary["questions_with_the_whole_chain"] == 0.333
    assert summary["recall@5"] == {"dense": {"whole_chain": 0.5, "broken_chain": 0.5},
                                   "hippo": {"whole_chain": 1.0, "broken_chain": None}}


def test_table_per_dataset_from_the_newest_largest_run(tmp_path: Path) -> None:
    def run(date: str, passages: int, whole: float) -> dict[str, object]:
        rows = [{"question_id": "a", "question_type": "2hop", "gold": 2, "with_facts": 2, "named": 1,
                 "reachable": 2},
                {"question_id": "b", "question_type": "3hop1", "gold": 3, "with_facts": 2, "named": 1,
                 "reachable": 1}]
        return {"benchmark": "gold_links", "date": date, "dataset": "musique", "passages": passages,
                "questions": 2, "gold_with_facts": 0.8, "questions_with_a_named_gold_passage": 1.0,
                "questions_with_the_whole_chain": whole,
                "recall@5": {"dense": {"whole_chain": 1.0, "broken_chain": 0.333},
                             "hippo": {"whole_chain": 1.0, "broken_chain": None}},
                "rows": rows}

    assert gold_links_table(tmp_path) is None
    for name, record in (("new-small", run("2026-02-01T00:00:00+00:00", 100, 0.1)),
                         ("old-large", run("2026-01-01T00:00:00+00:00", 1000, 0.5))):
        (tmp_path / f"gold_links-{name}.json").write_text(json.dumps(record))
    lines = (gold_links_table(tmp_path) or "").splitlines()
    assert lines[0].endswith("| dense recall@5: whole / broken | hippo recall@5: whole / broken |")
    assert lines[2:] == ["| musique, 1,000 passages (2026-01-01) | 2 | 80% | 100% | 50% "
                         "| 2hop 1/1, 3hop1 0/1 | 1.000 / 0.333 | 1.000 / – |"]
