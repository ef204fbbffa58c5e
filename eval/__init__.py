"""Evaluation on multi-hop QA data: build a dataset's store, measure retrieval, question answering and KG
coverage on it, and write one JSON result file per run.

    dataset = load_dataset("data/sample")                                   # eval.datasets
    prepared = prepare_corpus(dataset, settings, extractor="none")          # eval.corpus
    with prepared.open_store() as store:
        index = Runtime(prepared.settings).open_index()
        run = eval_retrieval(dataset, store, index, modes=("bm25", "dense"))  # eval.retrieval_eval
    stages, build_seconds = prepared.build_cost()
    write_result("retrieval", dataset, config, run.rows, run.aggregates,    # eval.result_files
                 Cost.of(stages, build_seconds, run.wall_seconds))

`eval_qa` (eval.qa_eval) and `eval_kg` (eval.kg_eval) run the same way. Every dataset subset and extractor
gets its own store directory under the eval work dir, so a chunks-only baseline store and an LLM-extracted
graph never mix, and a rerun of the same command resumes: ingest skips unchanged documents and the LLM
call cache holds every finished call.
"""
