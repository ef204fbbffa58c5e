"""Small, realistic teacher records (chunk text -> ChunkGraph) for the training tests."""

from __future__ import annotations

from typing import Any

# A stand-in for the `one_call` prompt, which the tests must not depend on.
SYSTEM_PROMPT = (
    "Extract the knowledge graph of the text. Answer with JSON: "
    '{"entities":[{"name","type"}],"quadruples":[{"subject","relation","object","proposition"}]}.'
)

# (chunk text, entities, quadruples as (subject, relation, object, proposition))
_FACTS: list[tuple[str, list[tuple[str, str]], list[tuple[str, str, str, str]]]] = [
    (
        "Marie Curie was born in Warsaw in 1867. She won the Nobel Prize in Physics in 1903.",
        [("Marie Curie", "person"), ("Warsaw", "city"), ("Nobel Prize in Physics", "award")],
        [
            ("Marie Curie", "born in", "Warsaw", "Marie Curie was born in Warsaw."),
            ("Marie Curie", "won", "Nobel Prize in Physics", "Marie Curie won the Nobel Prize in Physics."),
        ],
    ),
    (
        "The Danube flows through Vienna before it reaches Budapest.",
        [("Danube", "river"), ("Vienna", "city"), ("Budapest", "city")],
        [
            ("Danube", "flows through", "Vienna", "The Danube flows through Vienna."),
            ("Danube", "flows through", "Budapest", "The Danube flows through Budapest."),
        ],
    ),
    (
        "Ada Lovelace worked with Charles Babbage on the Analytical Engine.",
        [("Ada Lovelace", "person"), ("Charles Babbage", "person")],
        [("Ada Lovelace", "worked with", "Charles Babbage", "Ada Lovelace worked with Charles Babbage.")],
    ),
    (
        "Kyoto was the capital of Japan until 1868, when the emperor moved to Tokyo.",
        [("Kyoto", "city"), ("Japan", "country")],
        [("Kyoto", "capital of", "Japan", "Kyoto was the capital of Japan until 1868.")],
    ),
    (
        "The novel Things Fall Apart was written by Chinua Achebe and published in 1958.",
        [("Things Fall Apart", "book"), ("Chinua Achebe", "person")],
        [
            (
                "Things Fall Apart",
                "written by",
                "Chinua Achebe",
                "Things Fall Apart was written by Chinua Achebe.",
            )
        ],
    ),
    (
        "Lake Titicaca lies on the border between Peru and Bolivia.",
        [("Lake Titicaca", "lake"), ("Peru", "country"), ("Bolivia", "country")],
        [
            ("Lake Titicaca", "located in", "Peru", "Lake Titicaca lies partly in Peru."),
            ("Lake Titicaca", "located in", "Bolivia", "Lake Titicaca lies partly in Bolivia."),
        ],
    ),
    (
        "Alan Turing studied at King's College, Cambridge, where he later became a fellow.",
        [("Alan Turing", "person"), ("King's College, Cambridge", "organization")],
        [
            (
                "Alan Turing",
                "studied at",
                "King's College, Cambridge",
                "Alan Turing studied at King's College.",
            )
        ],
    ),
    (
        "The Eiffel Tower, designed by the company of Gustave Eiffel, stands in Paris.",
        [("Eiffel Tower", "building"), ("Gustave Eiffel", "person"), ("Paris", "city")],
        [
            ("Eiffel Tower", "located in", "Paris", "The Eiffel Tower stands in Paris."),
            (
                "Eiffel Tower",
                "designed by",
                "Gustave Eiffel",
                "The Eiffel Tower was designed by Eiffel's company.",
            ),
        ],
    ),
    (
        "Nairobi is the capital of Kenya and its largest city.",
        [("Nairobi", "city"), ("Kenya", "country")],
        [("Nairobi", "capital of", "Kenya", "Nairobi is the capital of Kenya.")],
    ),
    (
        "Johann Sebastian Bach was born in Eisenach and died in Leipzig in 1750.",
        [("Johann Sebastian Bach", "person"), ("Eisenach", "city"), ("Leipzig", "city")],
        [
            ("Johann Sebastian Bach", "born in", "Eisenach", "Johann Sebastian Bach was born in Eisenach."),
            ("Johann Sebastian Bach", "died in", "Leipzig", "Johann Sebastian Bach died in Leipzig."),
        ],
    ),
    (
        "Toyota was founded by Kiichiro Toyoda in 1937.",
        [("Toyota", "company"), ("Kiichiro Toyoda", "person")],
        [("Toyota", "founded by", "Kiichiro Toyoda", "Toyota was founded by Kiichiro Toyoda.")],
    ),
    (
        "The Amazon River empties into the Atlantic Ocean.",
        [("Amazon River", "river"), ("Atlantic Ocean", "ocean")],
        [
            (
                "Amazon River",
                "flows into",
                "Atlantic Ocean",
                "The Amazon River empties into the Atlantic Ocean.",
            )
        ],
    ),
]

# Not in the training data: the student's output on it shows whether it learned the format.
HELD_OUT_TEXT = "Frida Kahlo was born in Coyoacan."


def teacher_record(index: int, text: str, graph: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    record = {
        "chunk_id": f"chunk:{index:04d}",
        "document_id": f"doc:{index // 2:04d}",
        "text": text,
        "graph": graph,
        "teacher": {"model": "qwen2.5-coder-1.5b", "prompt_versions": {"propositions": "1", "triples": "1"}},
        "source": "tests",
    }
    record.update(overrides)
    return record


def teacher_records() -> list[dict[str, Any]]:
    return [
        teacher_record(
            i,
            text,
            {
                "entities": [{"name": n, "type": t} for n, t in entities],
                "quadruples": [
                    {"subject": s, "relation": r, "object": o, "proposition": p} for s, r, o, p in quadruples
                ],
            },
        )
        for i, (text, entities, quadruples) in enumerate(_FACTS)
    ]
