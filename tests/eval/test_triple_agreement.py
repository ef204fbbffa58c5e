"""Triple agreement between two graphs, chunk by chunk, and the paired bootstrap that says whether two
students' F1s differ by more than the chunks' noise."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from eval.triple_agreement import ChunkCounts, agreement, agreement_of, chunk_counts, f1_difference
from tests.retrieval.helpers import HashingEmbedder


@dataclass
class Triples:
    by_chunk: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


def test_counts_and_micro_f1_chunk_by_chunk() -> None:
    student = Triples({"c1": [("Ada", "wrote", "Notes"), ("Ada", "met", "Babbage")],
                       "c2": [("X", "is", "Y")]})
    teacher = Triples({"c1": [("Ada", "wrote", "Notes")], "c3": [("Paris", "is in", "France")]})
    counts = chunk_counts(student, teacher, HashingEmbedder(), 0.99)
    assert counts == {"c1": ChunkCounts(2, 1, 1, 1), "c2": ChunkCounts(1, 0, 0, 0),
                      "c3": ChunkCounts(0, 0, 1, 0)}
    result = agreement(student, teacher, HashingEmbedder(), 0.99)
    assert result["precision"] == pytest.approx(1 / 3) and result["recall"] == pytest.approx(1 / 2)
    assert result["f1"] == pytest.approx(0.4)
    assert agreement_of([], 0.9)["f1"] == 0.0  # nothing to agree on


def _counts(matched: list[int]) -> dict[str, ChunkCounts]:
    return {f"c{i}": ChunkCounts(4, m, 4, m) for i, m in enumerate(matched)}


def test_the_difference_of_equal_students_is_zero_and_a_clear_gain_excludes_zero() -> None:
    same = _counts([1, 2, 3, 0, 4, 2] * 5)
    tied = f1_difference(same, same)
    assert tied["difference"] == 0 and tied["ci95"] == [0, 0] and tied["chunks"] == 30
    better = _counts([3, 4, 4, 2, 4, 3] * 5)
    gain = f1_difference(better, same)
    assert gain["difference"] > 0 and gain["ci95"][0] > 0 and gain["below_zero"] == 0
    assert f1_difference(better, same) == gain  # seeded: the same interval every time
    loss = f1_difference(same, better)
    assert loss["ci95"][1] < 0 and loss["below_zero"] == 1


def test_a_difference_of_a_few_noisy_chunks_spans_zero() -> None:
    base = _counts([2] * 50)
    noisy = _counts([2] * 46 + [0, 0, 4, 3])  # two chunks worse, two better
    result = f1_difference(noisy, base)
    assert result["ci95"][0] < 0 < result["ci95"][1]
    # A chunk only one side has counts as zeros on the other.
    assert f1_difference({"a": ChunkCounts(2, 2, 2, 2)}, {"b": ChunkCounts(2, 2, 2, 2)})["chunks"] == 2
    with pytest.raises(ValueError, match="no chunk"):
        f1_difference({}, {})
