"""The training-set builder: chat format, dedupe, empty graphs, the split, lengths, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from synthkg.extract.schema import ChunkGraph
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation
from synthkg.store.embedded import EmbeddedStore
from tests.training.samples import SYSTEM_PROMPT, teacher_record, teacher_records
from training.dataset import (
    DatasetError,
    Example,
    TeacherRecord,
    build_dataset,
    build_examples,
    chat_messages,
    read_examples,
    read_teacher_records,
    records_from_store,
    split_examples,
    write_dataset,
    write_jsonl,
)

EMPTY_GRAPH = {"entities": [], "quadruples": []}


def records(rows: list[dict] | None = None) -> list[TeacherRecord]:
    return [TeacherRecord.model_validate(r) for r in (rows if rows is not None else teacher_records())]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_examples_are_system_user_assistant_with_compact_graph_json() -> None:
    recs = records()
    examples = build_examples(recs, SYSTEM_PROMPT, "Passage:\n$chunk")
    assert len(examples) == len(recs)
    for example, record in zip(examples, recs, strict=True):
        system, user, assistant = example.messages
        assert (system.role, user.role, assistant.role) == ("system", "user", "assistant")
        assert system.content == SYSTEM_PROMPT
        assert user.content == "Passage:\n" + record.text
        assert ChunkGraph.model_validate_json(assistant.content) == record.graph
        assert assistant.content == json.dumps(json.loads(assistant.content), separators=(",", ":"))
        assert example.chunk_id == record.chunk_id and example.document_id == record.document_id


def test_user_template_keeps_braces_and_needs_the_chunk_variable() -> None:
    template = 'Answer like {"entities": []} for cost $$5:\n$chunk'
    messages = chat_messages("sys", template, "Some text.")
    assert messages[1]["content"] == 'Answer like {"entities": []} for cost $5:\nSome text.'
    for bad in ("{text}", "$chunk $other", "$", "no variable"):
        with pytest.raises(DatasetError, match=r"\$chunk"):
            chat_messages("sys", bad, "Some text.")


def test_duplicate_chunk_texts_keep_the_first_record() -> None:
    rows = teacher_records()[:3]
    twin = dict(rows[0], chunk_id="chunk:twin", text="  " + rows[0]["text"].replace(" ", "\n  ") + " ")
    build = build_dataset(records([*rows, twin]), SYSTEM_PROMPT, validation_ratio=0.0)
    assert [e.chunk_id for e in build.train] == [r["chunk_id"] for r in rows]
    assert build.stats["duplicates_dropped"] == 1 and build.stats["examples"] == 3


def test_empty_graphs_are_dropped_unless_kept() -> None:
    rows = teacher_records()[:3]
    rows.append(teacher_record(99, "The page intentionally left blank.", EMPTY_GRAPH))
    entities_only = {"entities": [{"name": "Paris", "type": "city"}], "quadruples": []}
    rows.append(teacher_record(98, "Paris.", entities_only))
    dropped = build_dataset(records(rows), SYSTEM_PROMPT, validation_ratio=0.0)
    assert dropped.stats["empty_dropped"] == 2 and dropped.stats["examples"] == 3
    kept = build_dataset(records(rows), SYSTEM_PROMPT, validation_ratio=0.0, drop_empty=False)
    assert kept.stats["empty_dropped"] == 0 and kept.stats["examples"] == 5
    with pytest.raises(DatasetError, match="no examples left from 1 records"):
        build_dataset(records(rows[3:4]), SYSTEM_PROMPT)


def synthetic_examples(n: int) -> list[Example]:
    rows = [
        teacher_record(
            i,
            f"Person {i} was born in City {i}.",
            {
                "entities": [],
                "quadruples": [
                    {
                        "subject": f"P{i}",
                        "relation": "born in",
                        "object": f"C{i}",
                        "proposition": f"Person {i} was born in City {i}.",
                    }
                ],
            },
        )
        for i in range(n)
    ]
    return build_examples(records(rows), SYSTEM_PROMPT)


def test_split_depends_only_on_each_example() -> None:
    examples = synthetic_examples(300)
    train, validation = split_examples(examples, 0.2)
    assert 30 <= len(validation) <= 90 and len(train) + len(validation) == 300
    shuffled = examples[:]
    random.Random(7).shuffle(shuffled)
    _, validation_shuffled = split_examples(shuffled, 0.2)
    assert {e.id for e in validation_shuffled} == {e.id for e in validation}
    # More data never moves an example across the split.
    _, validation_subset = split_examples(examples[:150], 0.2)
    assert {e.id for e in validation_subset} == {e.id for e in validation if e in examples[:150]}
    assert split_examples(examples, 0.0)[1] == []


def test_split_holds_out_at_least_one_of_a_tiny_set() -> None:
    examples = synthetic_examples(3)
    train, validation = split_examples(examples, 0.01)
    assert len(validation) == 1 and len(train) == 2
    assert split_examples(examples, 0.01) == (train, validation)
    with pytest.raises(DatasetError, match="validation ratio"):
        split_examples(examples, 1.0)


def test_length_filter_reports_token_stats_and_drops() -> None:
    recs = records()

    def count(example: Example) -> int:  # a stand-in tokenizer: characters of the conversation
        return sum(len(m.content) for m in example.messages)

    lengths = sorted(count(e) for e in build_examples(recs, SYSTEM_PROMPT))
    limit = lengths[len(lengths) // 2]
    build = build_dataset(recs, SYSTEM_PROMPT, max_length=limit, count_tokens=count, validation_ratio=0.0)
    assert build.stats["too_long_dropped"] == sum(n > limit for n in lengths) > 0
    assert all(count(e) <= limit for e in build.train)
    assert build.stats["tokens"]["max"] == lengths[-1] and build.stats["tokens"]["min"] == lengths[0]
    with pytest.raises(DatasetError, match=r"no examples left .* over 10 tokens"):
        build_dataset(recs, SYSTEM_PROMPT, max_length=10, count_tokens=count)


def test_written_set_reads_back(tmp_path: Path) -> None:
    build = build_dataset(records(), SYSTEM_PROMPT, validation_ratio=0.25)
    paths = write_dataset(build, tmp_path / "set")
    assert read_examples([paths["train"]]) == build.train
    assert read_examples([paths["validation"]]) == build.validation
    stats = json.loads(paths["stats"].read_text())
    assert stats["train"] == len(build.train) and stats["system_prompt"] == SYSTEM_PROMPT
    # Rebuilt without a validation share, the old validation file must not linger.
    write_dataset(build_dataset(records(), SYSTEM_PROMPT, validation_ratio=0.0), tmp_path / "set")
    assert not (tmp_path / "set" / "validation.jsonl").exists()


def test_records_read_from_several_files(tmp_path: Path) -> None:
    rows = teacher_records()
    first = write_lines(tmp_path / "a.jsonl", [json.dumps(r) for r in rows[:5]] + [""])
    second = write_lines(tmp_path / "b.jsonl", [json.dumps(r) for r in rows[5:]])
    assert read_teacher_records([first, second]) == records(rows)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], r"a\.jsonl: empty file"),
        (["", "   "], r"a\.jsonl: empty file"),
        (["GOOD", "GOOD", '{"chunk_id": "x", '], r"a\.jsonl:3: malformed JSON"),
        (["GOOD", "[1, 2]"], r"a\.jsonl:2: expected a JSON object, got list"),
        (["GOOD", "NO_GRAPH"], r"a\.jsonl:2: not a valid teacher record: missing field 'graph'"),
        (["BAD_QUAD"], r"a\.jsonl:1: not a valid teacher record: field 'graph\.quadruples\.0\.subject"),
    ],
)
def test_bad_teacher_files_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    good = teacher_records()[0]
    no_graph = {k: v for k, v in good.items() if k != "graph"}
    bad_quad = json.loads(json.dumps(good))
    bad_quad["graph"]["quadruples"][0]["subject"] = ""
    substitutes = {
        "GOOD": json.dumps(good),
        "NO_GRAPH": json.dumps(no_graph),
        "BAD_QUAD": json.dumps(bad_quad),
    }
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(substitutes.get(line, line) for line in lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        read_teacher_records([path])


def test_missing_file_and_bad_examples(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere\.jsonl: file not found"):
        read_teacher_records([tmp_path / "nowhere.jsonl"])
    no_answer = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    path = write_lines(tmp_path / "ex.jsonl", [json.dumps(no_answer)])
    expected = r"ex\.jsonl:1: not a valid example: field 'messages': .*final assistant"
    with pytest.raises(DatasetError, match=expected):
        read_examples([path])


def test_examples_from_other_tools_need_only_messages(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "x": 1}
    path = write_lines(tmp_path / "ex.jsonl", [json.dumps(chat)])
    assert read_examples([path])[0].chat() == chat["messages"]
    assert write_jsonl(read_examples([path]), tmp_path / "out.jsonl").is_file()


def test_records_rebuilt_from_an_ingested_store(tmp_path: Path) -> None:
    doc = Document.create("Marie Curie was born in Warsaw. Maria Sklodowska studied in Paris.", key="d1")
    first = Chunk.create(doc.id, 0, "Marie Curie was born in Warsaw.")
    second = Chunk.create(doc.id, 1, "Maria Sklodowska studied in Paris.")
    empty = Chunk.create(doc.id, 2, "Contents.")
    curie = Entity.create("Marie Curie", "PERSON", aliases=["Maria Sklodowska"])
    warsaw, paris = Entity.create("Warsaw", "LOCATION"), Entity.create("Paris", "LOCATION")
    born = Proposition.create(first.id, "Marie Curie was born in Warsaw.", [curie.id, warsaw.id])
    studied = Proposition.create(second.id, "Maria Sklodowska studied in Paris.", [curie.id, paris.id])
    no_relation = Proposition.create(second.id, "Paris is a city.", [paris.id])
    batch = GraphBatch(
        documents=[doc],
        chunks=[first, second, empty],
        entities=[curie, warsaw, paris],
        propositions=[born, studied, no_relation],
        relations=[
            Relation.create(curie.id, "born in", warsaw.id, born.id),
            Relation.create(curie.id, "studied in", paris.id, studied.id),
        ],
    )
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(batch)
    with EmbeddedStore(tmp_path / "store", read_only=True) as store:
        recs = records_from_store(store, teacher_model="qwen2.5-coder-1.5b", source="store:test")
    assert [r.chunk_id for r in recs] == [first.id, second.id, empty.id]
    assert recs[0].text == first.text and recs[0].teacher.model == "qwen2.5-coder-1.5b"
    assert [(q.subject, q.relation, q.object, q.proposition) for q in recs[0].graph.quadruples] == [
        ("Marie Curie", "born in", "Warsaw", "Marie Curie was born in Warsaw.")
    ]
    # The chunk says "Maria Sklodowska": the alias it uses, not the canonical name, is what it teaches.
    assert [(q.subject, q.object) for q in recs[1].graph.quadruples] == [("Maria Sklodowska", "Paris")]
    assert {(e.name, e.type) for e in recs[1].graph.entities} == {
        ("Maria Sklodowska", "PERSON"),
        ("Paris", "LOCATION"),
    }
    assert recs[2].graph == ChunkGraph()
    build = build_dataset(recs, SYSTEM_PROMPT, validation_ratio=0.0)
    assert build.stats["empty_dropped"] == 1 and build.stats["examples"] == 2
