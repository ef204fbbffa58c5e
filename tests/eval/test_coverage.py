from __future__ import annotations

import numpy as np
import pytest

from eval.gold_triples import GoldTriple
from eval.metrics import triple_coverage, triple_text
from synthkg.embeddings import Embedder, SentenceTransformerEmbedder
from synthkg.extract.schema import Quadruple

GOLD = [
    ("Lothair II", "mother", "Ermengarde of Tours"),
    ("Ermengarde of Tours", "date of death", "20 March 851"),
]


class TableEmbedder:
    """Fixed unit vectors per text, to check the scoring arithmetic exactly."""

    name = "table"
    dim = 2

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        self.table = table

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_scoring_against_fixed_vectors() -> None:
    embedder = TableEmbedder(
        {"p r b": (1.0, 0.0), "c r d": (0.0, 1.0), "x r y": (0.6, 0.8), "p r z": (0.9, 0.43589)}
    )
    assert isinstance(embedder, Embedder)
    result = triple_coverage(
        [("p", "r", "b"), ("c", "r", "d")], [("x", "r", "y"), ("p", "r", "z")], embedder, 0.85
    )
    first, second = result.triples
    assert (first.best_match, second.best_match) == ("p r z", "x r y")
    assert first.similarity == pytest.approx(0.9, abs=1e-6)
    assert second.similarity == pytest.approx(0.8, abs=1e-6)
    assert (first.covered, second.covered) == (True, False)
    assert first.token_f1 == pytest.approx(2 / 3)  # {p, r, b} vs {p, r, z}
    assert second.token_f1 == pytest.approx(1 / 3)
    assert result.coverage == 0.5
    assert result.mean_similarity == pytest.approx(0.85, abs=1e-6)
    assert (result.n_gold, result.n_extracted, result.threshold) == (2, 2, 0.85)


def test_empty_sides_need_no_embedder() -> None:
    embedder = TableEmbedder({})
    nothing_extracted = triple_coverage(GOLD, [], embedder)
    assert nothing_extracted.coverage == 0.0
    assert [t.best_match for t in nothing_extracted.triples] == [None, None]
    no_gold = triple_coverage([], GOLD, embedder)
    assert (no_gold.coverage, no_gold.mean_similarity, no_gold.n_extracted) == (None, None, 2)


def test_triple_text_accepts_records() -> None:
    gold = GoldTriple(subject="A", relation="father", object="B", source="2wiki-evidence")
    quad = Quadruple(subject="A", relation="father", object="B", proposition="B is the father of A.")
    assert triple_text(gold) == triple_text(quad) == triple_text((" A", "father ", "B")) == "A father B"


@pytest.mark.slow
def test_real_embedder_identical_paraphrase_unrelated(embedder: SentenceTransformerEmbedder) -> None:
    identical = triple_coverage(GOLD, [GOLD[0]], embedder)
    assert identical.triples[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert identical.triples[0].token_f1 == 1.0
    assert identical.triples[0].covered

    unrelated = triple_coverage(GOLD, [("Major League Soccer", "comprises", "22 teams")], embedder)
    assert all(t.similarity < 0.3 and not t.covered for t in unrelated.triples)
    assert unrelated.coverage == 0.0

    extracted = [
        Quadruple(
            subject="Lothair II",
            relation="has mother",
            object="Ermengarde of Tours",
            proposition="Lothair II's mother was Ermengarde of Tours.",
        ),
        Quadruple(
            subject="Ermengarde of Tours",
            relation="died on",
            object="20 March 851",
            proposition="Ermengarde of Tours died on 20 March 851.",
        ),
        Quadruple(
            subject="Major League Soccer",
            relation="comprises",
            object="22 teams",
            proposition="Major League Soccer comprises 22 teams.",
        ),
    ]
    paraphrased = triple_coverage(GOLD, extracted, embedder)
    assert [t.best_match for t in paraphrased.triples] == [
        "Lothair II has mother Ermengarde of Tours",
        "Ermengarde of Tours died on 20 March 851",
    ]
    assert paraphrased.coverage == 1.0
    assert 0.88 <= paraphrased.triples[1].similarity < 0.99
    assert triple_coverage(GOLD, extracted, embedder, threshold=0.95).coverage == 0.5
