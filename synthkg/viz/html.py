"""One self-contained HTML file that draws a GraphView: vis-network (bundled in this package, inlined
into the page, so it works offline and without npm), the graph data as JSON, and a small script. Nodes
are coloured by entity type (with a legend), edges labelled by predicate; a click on a node or an edge
shows its propositions and their documents. With an answer, the page starts with the question, the
answer and its citations.

Everything that came from a document or an LLM is data: it travels as JSON inside a
<script type="application/json"> block with <, > and & escaped, and the page puts it on screen with
textContent only, so a name like "</script><script>alert(1)</script>" stays text.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from synthkg.viz.graph import GraphView

VIS_NETWORK_FILE = "vis-network.min.js"  # vis-network 10.1.2, standalone UMD build (see README.md here)
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)
_SLOT = re.compile(r"__(TITLE|DATA|APP|VIS)__")


def vis_network_js() -> str:
    """The bundled library, safe to inline in a <script> element."""
    text = resources.files("synthkg.viz").joinpath(VIS_NETWORK_FILE).read_text(encoding="utf-8")
    return _SCRIPT_END.sub(r"<\\/\1", text).replace("<!--", "<\\!--")


def json_for_script(data: Any) -> str:
    """JSON that cannot end or alter the <script> element holding it (JSON.parse reads it unchanged)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def render_html(view: GraphView, *, answer: dict[str, Any] | None = None) -> str:
    """The page. `answer`: {"question", "answer", "citations": [{"number", "title", "text", ...}]}."""
    data = {"view": view.as_dict(), "answer": answer}
    title = answer["question"] if answer else view.title
    parts = {
        "TITLE": html.escape(f"synthkg: {title}"),
        "DATA": json_for_script(data),
        "APP": _APP,
        "VIS": vis_network_js(),
    }
    # One pass over the template: a name that reads "__VIS__" in the data is never substituted.
    return _SLOT.sub(lambda m: parts[m.group(1)], _PAGE)


def write_html(path: str | Path, view: GraphView, *, answer: dict[str, Any] | None = None) -> Path:
    """Render and write atomically (a temporary file renamed into place): never a half-written page."""
    path = Path(path)
    text = render_html(view, answer=answer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
         color: #1f2328; background: #fff; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 16px; border-bottom: 1px solid #d0d7de; background: #f6f8fa; }
  header h1 { font-size: 17px; margin: 0 8px 0 0; display: inline; }
  header .meta { color: #57606a; }
  #find { margin-left: 12px; padding: 2px 6px; width: 16em; }
  #answer { padding: 8px 16px; border-bottom: 1px solid #d0d7de; max-height: 30vh; overflow: auto; }
  #answer .a { font-size: 16px; font-weight: 600; margin: 4px 0; }
  #answer ol { margin: 4px 0; padding-left: 24px; }
  #answer li { margin: 2px 0; }
  main { flex: 1; display: flex; min-height: 0; }
  #graph { flex: 1; min-width: 0; position: relative; }
  aside { width: 340px; border-left: 1px solid #d0d7de; overflow: auto; padding: 8px 12px;
          overflow-wrap: anywhere; }
  header h1, #answer { overflow-wrap: anywhere; }
  aside h2 { font-size: 15px; margin: 8px 0 4px; }
  #legend .item { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
  .swatch { width: 12px; height: 12px; border-radius: 50%; display: inline-block; flex: none; }
  #details .kind { color: #57606a; }
  #details ul { padding-left: 18px; margin: 4px 0; }
  #details li { margin: 4px 0; }
  .source { color: #57606a; font-size: 12px; }
  .cited { font-weight: 600; }
  .note { color: #9a6700; }
</style>
</head>
<body>
<header><h1 id="title"></h1><span class="meta" id="meta"></span>
<input id="find" list="names" placeholder="find an entity" aria-label="find an entity">
<datalist id="names"></datalist></header>
<section id="answer" hidden></section>
<main>
  <div id="graph" aria-label="graph"></div>
  <aside>
    <h2>Types</h2><div id="legend"></div>
    <h2>Details</h2><div id="details">Click a node or an edge to see its propositions and sources.</div>
  </aside>
</main>
<script type="application/json" id="synthkg-data">__DATA__</script>
<script>__VIS__</script>
<script>__APP__</script>
</body>
</html>
"""

_APP = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("synthkg-data").textContent);
  var view = data.view, answer = data.answer;
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function short(text, n) {
    text = String(text);
    return text.length > n ? text.slice(0, n - 1) + "\u2026" : text;
  }
  function sourceLine(ev) {
    var where = ev.title || ev.document_id || "unknown document";
    if (ev.source && ev.source !== ev.title) where += " \u2014 " + ev.source;
    return el("div", where, "source");
  }

  document.getElementById("title").textContent = view.title;
  var meta = view.nodes.length + " entities, " + view.edges.length + " relations";
  if (view.note) meta += "; " + view.note;
  document.getElementById("meta").textContent = meta;

  if (answer) {
    var box = document.getElementById("answer");
    box.hidden = false;
    box.appendChild(el("div", "Q: " + answer.question));
    box.appendChild(el("div", answer.answer || "(no answer)", "a"));
    if (answer.citations && answer.citations.length) {
      var ol = el("ol");
      answer.citations.forEach(function (c) {
        var li = el("li");
        li.value = c.number;
        li.appendChild(el("span", c.title || c.document_id, "cited"));
        li.appendChild(el("span", ": " + short(c.text, 300)));
        ol.appendChild(li);
      });
      box.appendChild(ol);
    } else {
      box.appendChild(el("div", "no citations", "source"));
    }
  }

  var legend = document.getElementById("legend");
  view.types.forEach(function (t) {
    var item = el("div", null, "item");
    var sw = el("span", null, "swatch");
    sw.style.background = t.color;
    item.appendChild(sw);
    item.appendChild(el("span", t.name + " (" + t.count + ")"));
    legend.appendChild(item);
  });

  var byId = {}, names = document.getElementById("names");
  view.nodes.forEach(function (n) { byId[n.id] = n; names.appendChild(el("option", n.name)); });
  var nodes = new vis.DataSet(view.nodes.map(function (n) {
    return { id: n.id, label: short(n.name, 40), shape: "dot", size: n.focus ? 22 : 13,
             borderWidth: n.focus ? 4 : 1,
             color: { background: n.color, border: n.focus ? "#1f2328" : n.color,
                      highlight: { background: n.color, border: "#d9480f" } } };
  }));
  var edges = new vis.DataSet(view.edges.map(function (e) {
    return { id: e.id, from: e.from, to: e.to, label: short(e.predicate, 32), width: e.cited ? 3 : 1,
             color: { color: e.cited ? "#d9480f" : "#8c959f", highlight: "#d9480f" } };
  }));
  var edgeById = {};
  view.edges.forEach(function (e) { edgeById[e.id] = e; });

  var details = document.getElementById("details");
  function clear() { while (details.firstChild) details.removeChild(details.firstChild); }
  function relationItem(e) {
    var li = el("li");
    var a = byId[e.from], b = byId[e.to];
    var line = (a ? a.name : e.from) + " \u2014[" + e.predicate + "]\u2192 " + (b ? b.name : e.to);
    li.appendChild(el("div", line, e.cited ? "cited" : null));
    if (e.proposition) li.appendChild(el("div", "\u201c" + e.proposition + "\u201d"));
    li.appendChild(sourceLine(e));
    return li;
  }
  function showNode(id) {
    var n = byId[id];
    if (!n) return;
    clear();
    details.appendChild(el("h3", n.name));
    details.appendChild(el("div", n.type, "kind"));
    if (n.aliases.length) details.appendChild(el("div", "also: " + n.aliases.join(", ")));
    if (n.description) details.appendChild(el("div", n.description));
    var rels = view.edges.filter(function (e) { return e.from === id || e.to === id; });
    if (rels.length) {
      details.appendChild(el("h4", "Relations (" + rels.length + ")"));
      var ul = el("ul");
      rels.forEach(function (e) { ul.appendChild(relationItem(e)); });
      details.appendChild(ul);
    }
    if (n.propositions.length) {
      details.appendChild(el("h4", "Propositions"));
      var pl = el("ul");
      n.propositions.forEach(function (p) {
        var li = el("li");
        li.appendChild(el("div", "\u201c" + p.proposition + "\u201d"));
        li.appendChild(sourceLine(p));
        pl.appendChild(li);
      });
      details.appendChild(pl);
    }
  }
  function showEdge(id) {
    var e = edgeById[id];
    if (!e) return;
    clear();
    var ul = el("ul");
    ul.appendChild(relationItem(e));
    details.appendChild(el("h3", e.predicate));
    details.appendChild(ul);
  }

  var container = document.getElementById("graph");
  var network = new vis.Network(container, { nodes: nodes, edges: edges }, {
    layout: { randomSeed: 7, improvedLayout: view.nodes.length <= 100 },
    physics: { solver: "forceAtlas2Based",
               forceAtlas2Based: { gravitationalConstant: -60, springLength: 110 },
               stabilization: { iterations: 250, updateInterval: 50 } },
    nodes: { font: { size: 14, color: "#1f2328", strokeWidth: 3, strokeColor: "#ffffff" } },
    edges: { arrows: { to: { enabled: true, scaleFactor: 0.6 } }, smooth: { type: "continuous" },
             font: { size: 11, color: "#57606a", strokeWidth: 3, strokeColor: "#ffffff", align: "middle" } },
    interaction: { hover: true, keyboard: false, multiselect: false }
  });
  network.on("click", function (params) {
    if (params.nodes.length) showNode(params.nodes[0]);
    else if (params.edges.length) showEdge(params.edges[0]);
  });
  network.once("stabilizationIterationsDone", function () { network.setOptions({ physics: false }); });
  network.on("afterDrawing", function () {
    container.setAttribute("data-node-count", String(Object.keys(network.getPositions()).length));
    container.setAttribute("data-edge-count", String(edges.length));
    container.setAttribute("data-drawn", "true");
  });
  document.getElementById("find").addEventListener("change", function (ev) {
    var name = ev.target.value.trim().toLowerCase();
    var hit = view.nodes.filter(function (n) { return n.name.toLowerCase() === name; })[0];
    if (!hit) return;
    network.selectNodes([hit.id]);
    network.focus(hit.id, { scale: 1.2, animation: false });
    showNode(hit.id);
  });
  var first = view.nodes.filter(function (n) { return n.focus; })[0];
  if (first) showNode(first.id);
})();
"""
