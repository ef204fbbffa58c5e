"""Graph retrieval with iterative prompting: the search index (`indexes`), the retrievers (`retrievers`),
the reader that answers from retrieved chunks (`reader`) and the optional LLM re-ranker (`rerank`)."""
