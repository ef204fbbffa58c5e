"""Whether the extracted graph holds each question's chain of gold passages, and the retrievers' recall@5
on the questions where it does and where it does not (eval/gold_links.py), over a recorded corpus:

    python -m eval.benchmarks.gold_links_bench --dataset ../shared/data/multihop/musique \\
        --records data/records/musique-dev/student_json.jsonl

The store is the one `synthkg eval retrieval --records ... --recorded-only --extractor distilled` builds
(the same work dir and key: reused, not rebuilt). No LLM is called. The README's table of it is generated
from the result file (`synthkg eval report --readme README.md`)."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from eval.benchmarks.retrieval_ablation import RESULTS, prepare_recorded
from eval.gold_links import link_gold_passages, summarize, synonym_map
from eval.retrieval_eval import eval_retrieval
from synthkg.config import Settings

MODES = ("dense", "graph", "hippo")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    dataset: Annotated[Path, typer.Option(help="A dataset folder (dev.json + corpus.json).")],
    records: Annotated[list[Path], typer.Option(help="Extraction records of the corpus (repeatable).")],
    work_dir: Annotated[Path | None, typer.Option(help="Stores of the eval runs (default: .synthkg/eval).")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Result file (default: eval/results/...).")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """How many questions' gold passages the graph links into one chain, and recall@5 with and without."""
    settings = Settings()
    data, runtime, prepared = prepare_recorded(dataset, records, settings, work_dir, progress)
    with prepared.open_store() as store:
        index = runtime.moved(prepared.settings).open_index()
        params = settings.retrieval.params()
        hippo = params.hippo
        synonyms = synonym_map(index, hippo.synonym_min, hippo.synonyms_per_entity)
        links = link_gold_passages(data, store, index, synonyms)
        retrieved = eval_retrieval(data, store, index, MODES, (5,), params=params,
                                   progress=progress)
    recall: dict[str, dict[str, float]] = {}
    for row in retrieved.rows:
        if "recall@5" in row.metrics:
            recall.setdefault(row.mode, {})[row.question_id] = row.metrics["recall@5"]
    result: dict[str, Any] = {
        "benchmark": "gold_links",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": data.name,
        "passages": len(data.passages),
        "records": [str(p) for p in records],
        "synonyms": {"min_similarity": hippo.synonym_min, "per_entity": hippo.synonyms_per_entity,
                     "pairs": sum(len(v) for v in synonyms.values()) // 2},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **summarize(links, recall),
    }
    path = out or RESULTS / f"gold_links-{data.name}-{len(data.passages)}p.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    split = ", ".join(f"{m} {v['whole_chain']} / {v['broken_chain']}" for m, v in result["recall@5"].items())
    typer.echo(f"gold passages with facts {result['gold_with_facts']}, questions with a named gold passage "
               f"{result['questions_with_a_named_gold_passage']}, with the whole chain "
               f"{result['questions_with_the_whole_chain']}; recall@5 (whole / broken chain): {split}")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
