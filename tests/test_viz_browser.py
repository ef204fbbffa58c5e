"""The HTML pages as a person sees them: headless Chromium (Debian's `chromium`, installed by
scripts/setup.sh for the dev extra) draws each page offline; the screenshot must show the graph and the DOM
must report every node drawn. Hostile names must stay text: nothing they hold runs.

Without Chromium these tests fail in CI and are skipped elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.corpus import QUESTION
from tests.retrieval.helpers import HashingEmbedder
from tests.store.corpus import make_corpus
from tests.test_api import build_graph_dir, citing_model

pytestmark = pytest.mark.slow

runner = CliRunner()
PWN = "document.documentElement.setAttribute('data-pwned','1')"
HOSTILE = f"</script><script>{PWN}</script>"
HOSTILE_PREDICATE = f'<img src=x onerror="{PWN}">'
DATA_BLOCK = re.compile(r'<script type="application/json" id="synthkg-data">(.*?)</script>', re.DOTALL)
GRAPH_DIV = re.compile(r'<div id="graph"[^>]*>')
WINDOW = (1200, 800)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: scripts/setup.sh installs Debian's for the dev extra")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("synthkg.embeddings.make_embedder", lambda settings: HashingEmbedder())
    monkeypatch.setattr("synthkg.llm.factory.make_backend", lambda *_: citing_model())


CONSOLE: list[str] = []  # the page's console messages in the last run (why a page was not drawn)
BUDGETS_MS = (5000, 20000, 60000)  # virtual time; a loaded CI machine once needed more than 5 s


def browse(chromium: str, page: Path, tmp_path: Path, *args: str, budget_ms: int = BUDGETS_MS[0]) -> str:
    """Run headless Chromium on `page` (no network: the page must need none) and return its stdout."""
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--virtual-time-budget={budget_ms}", *args, page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    CONSOLE[:] = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return done.stdout


def draw(chromium: str, page: Path, tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """The page's DOM after drawing, the graph element's attributes, and a screenshot.

    The layout settles in timer steps, so a page not drawn within one virtual-time budget is loaded again
    with a longer one; the screenshot uses the budget that drew it."""
    for budget in BUDGETS_MS:
        dom = browse(chromium, page, tmp_path, "--dump-dom", budget_ms=budget)
        graph = GRAPH_DIV.search(dom)
        assert graph is not None, dom[:2000]
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', graph.group(0)))
        if attributes.get("data-drawn") == "true":
            break
    else:
        pytest.fail(f"{page.name} was never drawn; the page's console: {CONSOLE[-20:]}")
    shot = tmp_path / f"{page.stem}.png"
    browse(chromium, page, tmp_path, f"--screenshot={shot}", budget_ms=budget)
    assert shot.is_file()
    return dom, attributes, shot


def graph_pixels(shot: Path) -> tuple[int, set[tuple[int, int, int]]]:
    """(distinct colours, colours) in the graph's part of the screenshot: below the header, left of the
    side panel (340 px)."""
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == WINDOW
        graph = image.convert("RGB").crop((0, 120, WINDOW[0] - 360, WINDOW[1]))
        colors = graph.getcolors(maxcolors=1 << 20) or []
    return len(colors), {c for n, c in colors if n >= 20}


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def page_data(page: Path) -> dict:
    match = DATA_BLOCK.search(page.read_text(encoding="utf-8"))
    assert match is not None
    return json.loads(match.group(1))


def hostile_store(path: Path) -> Path:
    k = make_corpus()
    doc = Document.create("A hostile text.", title=f"doc {HOSTILE}", key="hostile")
    chunk = Chunk.create(doc.id, 0, "A hostile text.")
    bad = Entity.create(HOSTILE, type=f"<b onmouseover=\"{PWN}\">type</b>")
    prop = Proposition.create(chunk.id, f"{HOSTILE} met Alan Turing.", [bad.id, k.a.id])
    rel = Relation.create(bad.id, HOSTILE_PREDICATE, k.a.id, prop.id)
    batch = k.batch()
    with EmbeddedStore(path) as store:
        store.write(batch)
        store.write(GraphBatch(documents=[doc], chunks=[chunk], entities=[bad], propositions=[prop],
                               relations=[rel]))
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result.output


def test_whole_graph_is_drawn_with_type_colours(chromium: str, tmp_path: Path) -> None:
    store = hostile_store(tmp_path / "kg")
    invoke("--store-path", str(store), "export", "graph.html", "--format", "html")
    page = tmp_path / "graph.html"
    view = page_data(page)["view"]
    dom, graph, shot = draw(chromium, page, tmp_path)
    assert graph.get("data-drawn") == "true"
    assert int(graph["data-node-count"]) == len(view["nodes"]) == 5
    assert int(graph["data-edge-count"]) == len(view["edges"]) == 4
    assert not re.search(r"<html[^>]*data-pwned", dom)  # no stored text ran as code
    distinct, common = graph_pixels(shot)
    assert distinct > 50, "the graph area of the screenshot is blank"
    drawn_types = {t["name"] for t in view["types"] if rgb(t["color"]) in common}
    assert len(drawn_types) >= 4, (drawn_types, view["types"])  # the nodes' fills, coloured by type


def test_neighbourhood_page_shows_the_entity_details_as_text(chromium: str, tmp_path: Path) -> None:
    store = hostile_store(tmp_path / "kg")
    invoke("--store-path", str(store), "export", "around.html", "-f", "html", "--around", HOSTILE,
           "--hops", "2")
    page = tmp_path / "around.html"
    dom, graph, shot = draw(chromium, page, tmp_path)
    # the entity, Alan Turing and Bletchley Park
    assert int(graph["data-node-count"]) == len(page_data(page)["view"]["nodes"]) == 3
    assert not re.search(r"<html[^>]*data-pwned", dom)
    # the focused entity's details: its name, the relation's predicate and proposition, all as text
    details = dom[dom.index('id="details"'):]
    assert "<h3>&lt;/script&gt;&lt;script&gt;document.documentElement" in details
    assert "&lt;img src=x onerror=" in details and "met Alan Turing." in details
    assert graph_pixels(shot)[0] > 50


def test_query_page_shows_the_answer_and_draws_the_evidence(chromium: str, tmp_path: Path) -> None:
    store = tmp_path / "kg"
    build_graph_dir(store, HashingEmbedder())
    invoke("--store-path", str(store), "query", QUESTION, "--html", "answer.html")
    page = tmp_path / "answer.html"
    data = page_data(page)
    dom, graph, shot = draw(chromium, page, tmp_path)
    assert int(graph["data-node-count"]) == len(data["view"]["nodes"]) > 5
    answer = dom[dom.index('id="answer"'):dom.index("<main")]
    assert "Portugal" in answer and "Yorick Bellamy" in answer and "hidden" not in answer.split(">")[0]
    assert graph_pixels(shot)[0] > 50
