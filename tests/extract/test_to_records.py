from __future__ import annotations

import json
import subprocess
import sys

from synthkg.extract.base import ExtractionResult
from synthkg.extract.schema import ChunkGraph, ExtractedEntity, Quadruple
from synthkg.extract.to_records import document_records, merge_batches, to_records
from synthkg.model import Chunk, Document, Entity, GraphBatch, stable_id

DOC = Document.create("Ada worked with Babbage. It was built in London.", title="Ada", key="demo-1")
ORIGINAL = "It was built in London."
REWRITE = "The Analytical Engine was built in London."
SHARED = "Ada Lovelace and Charles Babbage worked on the Analytical Engine in London."
GRAPH = ChunkGraph(
    entities=[
        ExtractedEntity(name="Ada Lovelace", type="PERSON"),
        ExtractedEntity(name="Charles Babbage", type="PERSON"),
        ExtractedEntity(name="London", type="LOCATION"),
        ExtractedEntity(name="Analytical Engine", type="OTHER"),
        ExtractedEntity(name="Royal Society", type="ORGANIZATION"),  # in no proposition
    ],
    quadruples=[
        Quadruple(
            subject="Ada Lovelace", relation="worked with", object="Charles Babbage", proposition=SHARED
        ),
        Quadruple(
            subject="Ada Lovelace", relation="worked on", object="Analytical Engine", proposition=SHARED
        ),
        Quadruple(
            subject="the Analytical Engine", relation="was built in", object="1837", proposition=REWRITE
        ),
    ],
)
RESULT = ExtractionResult(
    original_text=ORIGINAL, text=REWRITE, decontextualized=True, rouge1_f1=0.8, graph=GRAPH
)


def by_name(batch: GraphBatch) -> dict[str, Entity]:
    return {e.name: e for e in batch.entities}


def test_records_and_provenance_links() -> None:
    batch = to_records(DOC, 1, RESULT)
    assert batch.documents == []
    (chunk,) = batch.chunks
    assert chunk == Chunk.create(DOC.id, 1, ORIGINAL, REWRITE)
    assert chunk.decontextualized and chunk.text == REWRITE and chunk.original_text == ORIGINAL

    entities = by_name(batch)
    assert set(entities) == {"Ada Lovelace", "Charles Babbage", "London", "Analytical Engine", "1837"}
    assert entities["1837"].type == "OTHER"  # a literal object becomes an entity
    assert entities["London"].type == "LOCATION"

    shared, built = batch.propositions
    assert (shared.text, built.text) == (SHARED, REWRITE)
    assert all(p.chunk_id == chunk.id for p in batch.propositions)
    # Subjects and objects of its quadruples, then the chunk's other entities the sentence names.
    assert shared.entity_ids == tuple(
        entities[n].id for n in ("Ada Lovelace", "Charles Babbage", "Analytical Engine", "London")
    )
    assert built.entity_ids == (entities["Analytical Engine"].id, entities["1837"].id, entities["London"].id)

    assert [(r.subject_id, r.predicate, r.object_id, r.proposition_id) for r in batch.relations] == [
        (entities["Ada Lovelace"].id, "worked with", entities["Charles Babbage"].id, shared.id),
        (entities["Ada Lovelace"].id, "worked on", entities["Analytical Engine"].id, shared.id),
        (entities["Analytical Engine"].id, "was built in", entities["1837"].id, built.id),
    ]
    mentioned = {i for p in batch.propositions for i in p.entity_ids}
    assert {e.id for e in batch.entities} == mentioned  # no orphan entity (Royal Society is left out)


def test_ids_are_content_hashes() -> None:
    batch = to_records(DOC, 1, RESULT)
    assert batch.chunks[0].id == stable_id("chunk", DOC.id, "1", ORIGINAL)
    assert by_name(batch)["Ada Lovelace"].id == stable_id("ent", "ada lovelace")
    # Same facts in another chunk: same entities, new chunk, propositions and relations.
    other = to_records(DOC, 2, RESULT)
    assert {e.id for e in other.entities} == {e.id for e in batch.entities}
    assert other.chunks[0].id != batch.chunks[0].id
    assert not {p.id for p in other.propositions} & {p.id for p in batch.propositions}


def test_ids_are_stable_across_runs() -> None:
    code = (
        "import json, sys\n"
        "from synthkg.extract.base import ExtractionResult\n"
        "from synthkg.extract.to_records import to_records\n"
        "from synthkg.model import Document\n"
        "doc = Document.model_validate_json(sys.argv[1])\n"
        "result = ExtractionResult.model_validate_json(sys.argv[2])\n"
        "print(to_records(doc, 1, result).model_dump_json())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, DOC.model_dump_json(), RESULT.model_dump_json()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert GraphBatch.model_validate(json.loads(out)) == to_records(DOC, 1, RESULT)


def test_failed_result_writes_only_the_chunk() -> None:
    failed = ExtractionResult(
        original_text=ORIGINAL,
        text=ORIGINAL,
        graph=ChunkGraph(entities=GRAPH.entities),
        failure="quadruples:truncated",
    )
    batch = to_records(DOC, 0, failed)
    assert len(batch.chunks) == 1 and not batch.chunks[0].decontextualized
    assert (batch.entities, batch.propositions, batch.relations) == ([], [], [])


def test_short_names_are_not_matched_inside_sentences() -> None:
    graph = ChunkGraph(
        entities=[
            ExtractedEntity(name="US", type="LOCATION"),
            ExtractedEntity(name="Apple", type="ORGANIZATION"),
        ],
        quadruples=[
            Quadruple(
                subject="Apple", relation="sells", object="iPhone", proposition="Apple sells the US iPhone."
            )
        ],
    )
    batch = to_records(DOC, 0, ExtractionResult(original_text="x", text="x", graph=graph))
    assert {e.name for e in batch.entities} == {"Apple", "iPhone"}


def test_document_records_merge_chunks() -> None:
    first = ExtractionResult(
        original_text="a",
        text="a",
        graph=ChunkGraph(
            quadruples=[Quadruple(subject="Ada Lovelace", relation="met", object="Babbage", proposition="p1")]
        ),
    )
    second = ExtractionResult(
        original_text="b",
        text="b",
        graph=ChunkGraph(
            entities=[ExtractedEntity(name="Ada Lovelace", type="PERSON")],
            quadruples=[
                Quadruple(subject="Ada Lovelace", relation="wrote", object="Notes", proposition="p2")
            ],
        ),
    )
    batch = document_records(DOC, [first, second])
    assert batch.documents == [DOC]
    assert [c.index for c in batch.chunks] == [0, 1]
    names = [e.name for e in batch.entities]
    assert sorted(names) == ["Ada Lovelace", "Babbage", "Notes"]  # Ada once
    assert by_name(batch)["Ada Lovelace"].type == "PERSON"  # the specific type wins over OTHER
    assert len(batch.propositions) == 2 and len(batch.relations) == 2
    assert merge_batches([batch, batch]) == batch
