"""`synthkg show`, `synthkg export --format html` and `synthkg query --html`: what a person reads, and
that stored text stays text in the page (the browser test in tests/test_viz_browser.py draws the page)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation
from synthkg.resolve import Merge, MergeLog
from synthkg.store.embedded import EmbeddedStore
from synthkg.viz.graph import store_view
from synthkg.viz.html import VIS_NETWORK_FILE, json_for_script, render_html
from tests.retrieval.corpus import QUESTION, SUPPORT_A, SUPPORT_B, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder
from tests.store.corpus import make_corpus
from tests.test_api import build_graph_dir, citing_model

runner = CliRunner()
HOSTILE = "</script><script>alert(1)</script>"
DATA_BLOCK = re.compile(r'<script type="application/json" id="synthkg-data">(.*?)</script>', re.DOTALL)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("synthkg.embeddings.make_embedder", lambda settings: HashingEmbedder())
    monkeypatch.setattr("synthkg.llm.factory.make_backend", lambda *_: citing_model())


def hostile_batch() -> GraphBatch:
    """The store test corpus (A -> B -> C <- D, typed) plus a document about an entity with a hostile
    name, type and predicate, related to Alan Turing."""
    k = make_corpus()
    doc = Document.create("A hostile text.", title=f"title {HOSTILE}", source=f"src {HOSTILE}.txt", key="h")
    chunk = Chunk.create(doc.id, 0, "A hostile text.")
    bad = Entity.create(HOSTILE, type="<b>type</b>", aliases=["&amp; alias"])
    prop = Proposition.create(chunk.id, f"{HOSTILE} met Alan Turing.", [bad.id, k.a.id])
    rel = Relation.create(bad.id, "<img src=x onerror=alert(1)>", k.a.id, prop.id)
    batch = k.batch()
    return GraphBatch(documents=[*batch.documents, doc], chunks=[*batch.chunks, chunk],
                      entities=[*batch.entities, bad], propositions=[*batch.propositions, prop],
                      relations=[*batch.relations, rel])


def make_store(path: Path, batch: GraphBatch | None = None) -> Path:
    with EmbeddedStore(path) as store:
        store.write(batch if batch is not None else hostile_batch())
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def page_data(path: Path) -> dict:
    match = DATA_BLOCK.search(path.read_text(encoding="utf-8"))
    assert match is not None
    return json.loads(match.group(1))


# --- show ----------------------------------------------------------------------------------------
def test_show_prints_the_entity_its_merges_and_relations_with_sources(tmp_path: Path) -> None:
    store = make_store(tmp_path / "kg")
    k = make_corpus()
    MergeLog(tmp_path / ".synthkg").append([
        Merge("Dr. Turing", "person", k.a.id, "Alan Turing", "embedding", 0.95, k.doc1.id),
        Merge("Enigma", "machine", k.c.id, "Enigma", "alias", 1.0, k.doc2.id),
    ])
    code, output = invoke("--store-path", str(store), "show", "turing")  # an alias, any case
    assert code == 0, output
    assert f"Alan Turing  [person]  {k.a.id}" in output
    assert "description: mathematician" in output and "aliases: A. M. Turing, Turing" in output
    assert "merged: 'Dr. Turing' into it (embedding 0.95, document " in output and "'Enigma'" not in output
    assert "Alan Turing -[worked at]-> Bletchley Park" in output
    assert '"Alan Turing worked at Bletchley Park."' in output and "from: Turing, doc1.txt" in output
    assert "mentioned by 2 propositions; 2 relations" in output
    # the hostile entity is printed as text, its relation into Alan Turing listed too
    assert f"{HOSTILE} -[<img src=x onerror=alert(1)>]-> Alan Turing" in output


def test_show_lists_every_match_and_refuses_an_unknown_name(tmp_path: Path) -> None:
    x = Entity.create("Doctor Who", "character", aliases=["The Doctor"])
    y = Entity.create("Doctor Watson", "character", aliases=["the doctor"])
    store = make_store(tmp_path / "kg", GraphBatch(entities=[x, y]))
    code, output = invoke("--store-path", str(store), "show", "doctor")
    assert code == 0 and "2 entities match 'doctor':" in output
    assert "Doctor Who  [character]" in output and "Doctor Watson  [character]" in output
    code, output = invoke("--store-path", str(store), "show", "Nobody")
    assert code == 1 and "no entity named 'Nobody'" in output


# --- export --format html -------------------------------------------------------------------------
def test_export_html_is_one_offline_page_with_the_graph(tmp_path: Path) -> None:
    store = make_store(tmp_path / "kg")
    code, output = invoke("--store-path", str(store), "export", "graph.html", "--format", "html")
    assert code == 0 and "wrote graph.html" in output, output
    text = (tmp_path / "graph.html").read_text(encoding="utf-8")
    assert "vis.Network" in text and "@version 10.1.2" in text  # the library is inlined
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)  # nothing loaded from elsewhere
    data = page_data(tmp_path / "graph.html")["view"]
    names = {"Alan Turing", "Bletchley Park", "Enigma", "German military", HOSTILE}
    assert {n["name"] for n in data["nodes"]} == names
    assert {(e["predicate"], e["proposition"], e["title"]) for e in data["edges"]} >= {
        ("worked at", "Alan Turing worked at Bletchley Park.", "Turing"),
        ("built", "The German military built Enigma.", "Enigma"),
    }
    colors = {t["name"]: t["color"] for t in data["types"]}
    assert len(set(colors.values())) == len(colors) == 5  # one colour per type
    assert all(n["color"] == colors[n["type"]] for n in data["nodes"])
    turing = next(n for n in data["nodes"] if n["name"] == "Alan Turing")
    assert turing["propositions"][0]["proposition"] == "Alan Turing worked at Bletchley Park."


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    with EmbeddedStore(make_store(tmp_path / "kg"), read_only=True) as store:
        page = render_html(store_view(store))
    # the three <script> elements of the page and no other; the data block ends where it should
    assert page.count("<script") == 3 and page.lower().count("</script") == 3
    assert HOSTILE not in page and "<img src=x" not in page and "<b>type</b>" not in page
    data = json.loads(DATA_BLOCK.search(page).group(1))  # type: ignore[union-attr]
    assert HOSTILE in {n["name"] for n in data["view"]["nodes"]}
    assert any(e["predicate"] == "<img src=x onerror=alert(1)>" for e in data["view"]["edges"])
    # text that looks like a template slot is data too
    escaped = '{"x":"__VIS__ \\u003c/script\\u003e \\u0026 \\u2028"}'
    assert json_for_script({"x": "__VIS__ </script> & \u2028"}) == escaped


def test_bundled_library_is_safe_to_inline() -> None:
    from importlib import resources

    text = resources.files("synthkg.viz").joinpath(VIS_NETWORK_FILE).read_text(encoding="utf-8")
    assert "</script" not in text.lower() and "<!--" not in text
    assert resources.files("synthkg.viz").joinpath("vis-network.LICENSE-MIT").is_file()


def test_export_html_around_an_entity_and_limit(tmp_path: Path) -> None:
    store = make_store(tmp_path / "kg")
    code, output = invoke("--store-path", str(store), "export", "around.html", "-f", "html", "--around",
                          "Bletchley Park", "--hops", "1")
    assert code == 0, output
    view = page_data(tmp_path / "around.html")["view"]
    assert {n["name"] for n in view["nodes"]} == {"Bletchley Park", "Alan Turing", "Enigma"}
    assert [n["name"] for n in view["nodes"] if n["focus"]] == ["Bletchley Park"]
    assert {e["predicate"] for e in view["edges"]} == {"worked at", "broke"}
    assert view["title"] == "Around Bletchley Park (1 hop)"

    code, output = invoke("--store-path", str(store), "export", "top.html", "-f", "html", "--limit", "2")
    assert code == 0, output
    view = page_data(tmp_path / "top.html")["view"]
    assert len(view["nodes"]) == 2 and "showing the 2 best-connected of 5 entities" in view["note"]
    # the best-connected (2 relations each; ties by name)
    assert {n["name"] for n in view["nodes"]} == {"Alan Turing", "Bletchley Park"}


def test_export_html_refuses_an_empty_store_or_unknown_entity_and_writes_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path / "kg")
    code, output = invoke("--store-path", str(store), "export", "x.html", "-f", "html", "--around", "Nobody")
    assert code == 1 and "no entity named 'Nobody'" in output and "nothing written" in output
    empty = make_store(tmp_path / "empty", GraphBatch())
    code, output = invoke("--store-path", str(empty), "export", "x.html", "--format", "html")
    assert code == 1 and "holds no entities" in output
    chunks_only = make_store(tmp_path / "chunks", GraphBatch(documents=[make_corpus().doc1]))
    code, output = invoke("--store-path", str(chunks_only), "export", "x.html", "--format", "html")
    assert code == 1 and "--extractor none" in output
    code, output = invoke("--store-path", str(tmp_path / "missing"), "export", "x.html", "--format", "html")
    assert code == 1
    code, output = invoke("--store-path", str(store), "export", "x.graphml", "-f", "graphml",
                          "--around", "Enigma")
    assert code == 1 and "--around applies to --format html only" in output
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


# --- query --html ---------------------------------------------------------------------------------
def test_query_html_writes_the_answer_citations_and_evidence(tmp_path: Path) -> None:
    store = tmp_path / "kg"
    batch = build_graph_dir(store, HashingEmbedder())
    code, output = invoke("--store-path", str(store), "query", QUESTION, "--html", "answer.html", "--json")
    assert code == 0, output
    assert json.loads(output[output.index("{"):])["answer"] == "Portugal"  # "wrote ..." went to stderr
    data = page_data(tmp_path / "answer.html")
    answer = data["answer"]
    assert answer["question"] == QUESTION and answer["answer"] == "Portugal"
    assert {c["title"] for c in answer["citations"]} == {SUPPORT_A, SUPPORT_B}
    assert {c["chunk_id"] for c in answer["citations"]} == {chunk_id_of(batch, SUPPORT_A),
                                                            chunk_id_of(batch, SUPPORT_B)}
    view = data["view"]
    names = {n["name"] for n in view["nodes"]}
    assert {"Xanadu Nights", "Yorick Bellamy", "Lisbon", "Portugal"} <= names
    cited = {(e["predicate"], e["title"]) for e in view["edges"] if e["cited"]}
    assert {("directed by", SUPPORT_A), ("born in", SUPPORT_B)} <= cited
    assert {n["name"] for n in view["nodes"] if n["focus"]} >= {"Yorick Bellamy", "Portugal"}

    code, output = invoke("--store-path", str(store), "query", QUESTION, "--html", "again.html")
    assert code == 0 and "wrote again.html" in output and "answer:   Portugal" in output
