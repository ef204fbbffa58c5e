"""A small hand-written knowledge graph with one 2-hop question.

"Which country is the birthplace of the director of the film Xanadu Nights?" needs two passages:
A ("Xanadu Nights" was directed by Yorick Bellamy) and B (Yorick Bellamy was born in Lisbon, Portugal).
B shares no content word with the question; the distractors share many (country, birthplace, director,
film, Xanadu, Nights) and one has the same "film directed by X, who was born in country Y" shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation

QUESTION = "Which country is the birthplace of the director of the film Xanadu Nights?"
SUPPORT_A = "Xanadu Nights"
SUPPORT_B = "Yorick Bellamy"


@dataclass(frozen=True)
class Doc:
    title: str
    text: str
    # (proposition text, names of the entities it mentions)
    propositions: tuple[tuple[str, tuple[str, ...]], ...]
    # (subject, predicate, object, index of the proposition stating it)
    relations: tuple[tuple[str, str, str, int], ...] = ()


DOCS: tuple[Doc, ...] = (
    Doc(
        "Xanadu Nights",
        "Xanadu Nights is a 1987 drama film directed by Yorick Bellamy. The film follows a lighthouse keeper "
        "on the coast of Maine during one winter.",
        (
            ("Xanadu Nights is a 1987 drama film.", ("Xanadu Nights",)),
            ("Xanadu Nights was directed by Yorick Bellamy.", ("Xanadu Nights", "Yorick Bellamy")),
            ("Xanadu Nights follows a lighthouse keeper on the coast of Maine.", ("Xanadu Nights", "Maine")),
        ),
        (("Xanadu Nights", "directed by", "Yorick Bellamy", 1), ("Xanadu Nights", "set in", "Maine", 2)),
    ),
    Doc(
        "Yorick Bellamy",
        "Yorick Bellamy was born in Lisbon, Portugal, in 1941. He studied painting in Paris and later worked "
        "as a screenwriter in London.",
        (
            (
                "Yorick Bellamy was born in Lisbon, Portugal, in 1941.",
                ("Yorick Bellamy", "Lisbon", "Portugal"),
            ),
            ("Yorick Bellamy studied painting in Paris.", ("Yorick Bellamy", "Paris")),
            ("Yorick Bellamy worked as a screenwriter in London.", ("Yorick Bellamy", "London")),
        ),
        (
            ("Yorick Bellamy", "born in", "Lisbon", 0),
            ("Lisbon", "located in", "Portugal", 0),
            ("Yorick Bellamy", "studied in", "Paris", 1),
            ("Yorick Bellamy", "worked in", "London", 2),
        ),
    ),
    Doc(
        "Birthplace of cinema",
        "France is often called the birthplace of cinema. The Lumière brothers directed the first films "
        "shown to a paying audience, in Paris in 1895, and the country remains a centre of film making.",
        (
            ("France is often called the birthplace of cinema.", ("France",)),
            (
                "The Lumière brothers directed the first films shown to a paying audience in Paris in 1895.",
                ("Lumière brothers", "Paris"),
            ),
            ("France remains a centre of film making.", ("France",)),
        ),
        (("Lumière brothers", "screened films in", "Paris", 1), ("Paris", "capital of", "France", 0)),
    ),
    Doc(
        "Xanadu (1980 film)",
        "Xanadu is a 1980 musical fantasy film directed by Robert Greenwald. The film was shot in Los "
        "Angeles in the United States.",
        (
            ("Xanadu is a 1980 musical fantasy film.", ("Xanadu",)),
            ("Xanadu was directed by Robert Greenwald.", ("Xanadu", "Robert Greenwald")),
            (
                "Xanadu was shot in Los Angeles in the United States.",
                ("Xanadu", "Los Angeles", "United States"),
            ),
        ),
        (
            ("Xanadu", "directed by", "Robert Greenwald", 1),
            ("Xanadu", "shot in", "Los Angeles", 2),
            ("Los Angeles", "located in", "United States", 2),
        ),
    ),
    Doc(
        "Nights of the Desert",
        "Nights of the Desert is a 1992 film directed by Amira Haddad, who was born in Egypt. The film "
        "premiered in Cairo.",
        (
            ("Nights of the Desert is a 1992 film.", ("Nights of the Desert",)),
            ("Nights of the Desert was directed by Amira Haddad.", ("Nights of the Desert", "Amira Haddad")),
            ("Amira Haddad was born in Egypt.", ("Amira Haddad", "Egypt")),
            ("Nights of the Desert premiered in Cairo.", ("Nights of the Desert", "Cairo")),
        ),
        (
            ("Nights of the Desert", "directed by", "Amira Haddad", 1),
            ("Amira Haddad", "born in", "Egypt", 2),
            ("Nights of the Desert", "premiered in", "Cairo", 3),
        ),
    ),
    Doc(
        "Film director",
        "A film director controls a film's artistic and dramatic aspects. Directors often come from the "
        "country where the film is produced.",
        (
            ("A film director controls a film's artistic and dramatic aspects.", ("film director",)),
            ("Film directors often come from the country where the film is produced.", ("film director",)),
        ),
    ),
    Doc(
        "Lisbon",
        "Lisbon is the capital and largest city of Portugal, on the Atlantic coast.",
        (
            ("Lisbon is the capital and largest city of Portugal.", ("Lisbon", "Portugal")),
            ("Lisbon lies on the Atlantic coast.", ("Lisbon", "Atlantic Ocean")),
        ),
        (("Lisbon", "capital of", "Portugal", 0), ("Lisbon", "on the coast of", "Atlantic Ocean", 1)),
    ),
    Doc(
        "Margot Bellamy",
        "Margot Bellamy is an English actress born in Leeds, England. She starred in the film Harbour Lights "
        "in 1990.",
        (
            (
                "Margot Bellamy is an English actress born in Leeds, England.",
                ("Margot Bellamy", "Leeds", "England"),
            ),
            (
                "Margot Bellamy starred in the film Harbour Lights in 1990.",
                ("Margot Bellamy", "Harbour Lights"),
            ),
        ),
        (("Margot Bellamy", "born in", "Leeds", 0), ("Margot Bellamy", "starred in", "Harbour Lights", 1)),
    ),
    Doc(
        "Lighthouse keepers of Maine",
        "Lighthouse keepers on the coast of Maine lived with their families in small stone houses. Several "
        "films and novels describe their winters.",
        (
            ("Lighthouse keepers on the coast of Maine lived in small stone houses.", ("Maine",)),
            ("Several films and novels describe the winters of Maine lighthouse keepers.", ("Maine",)),
        ),
    ),
    Doc(
        "Harbour Lights",
        "Harbour Lights is a 1990 British film about a fishing village. It was the first film of its "
        "director, who was born in Scotland.",
        (
            ("Harbour Lights is a 1990 British film about a fishing village.", ("Harbour Lights",)),
            ("The director of Harbour Lights was born in Scotland.", ("Harbour Lights", "Scotland")),
        ),
        (("Harbour Lights", "director born in", "Scotland", 1),),
    ),
)


def build_batch(docs: tuple[Doc, ...] = DOCS) -> GraphBatch:
    """One chunk per document, its propositions, entities and relations."""
    batch = GraphBatch()
    entities: dict[str, Entity] = {}

    def entity(name: str) -> Entity:
        if name not in entities:
            entities[name] = Entity.create(name)
        return entities[name]

    for doc in docs:
        document = Document.create(doc.text, title=doc.title, key=doc.title)
        chunk = Chunk.create(document.id, 0, doc.text)
        props = [
            Proposition.create(chunk.id, text, [entity(n).id for n in names])
            for text, names in doc.propositions
        ]
        batch.documents.append(document)
        batch.chunks.append(chunk)
        batch.propositions.extend(props)
        batch.relations.extend(
            Relation.create(entity(s).id, p, entity(o).id, props[i].id) for s, p, o, i in doc.relations
        )
    batch.entities.extend(entities.values())
    return batch


def chunk_id_of(batch: GraphBatch, title: str) -> str:
    document = next(d for d in batch.documents if d.title == title)
    return next(c.id for c in batch.chunks if c.document_id == document.id)
