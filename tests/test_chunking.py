from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from synthkg.chunking import approx_token_count, chunk_document, chunk_text, sentence_spans
from synthkg.model import Document

DEMO_CORPUS = Path("/work/shared/data/multihop/demo_hoprag/corpus.json")


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def test_sentences_are_never_split_when_they_fit() -> None:
    sentences = [
        f"Sentence number {i} talks about Dr. Smith and the U.S. economy in 2005." for i in range(60)
    ]
    text = " ".join(sentences)
    chunks = chunk_text(text, max_tokens=64)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.startswith("Sentence number") and chunk.endswith("2005.")
        assert approx_token_count(chunk) <= 64
    # No overlap, nothing lost: the chunks are the text's sentences, in order.
    assert " ".join(chunks) == text


def test_chunks_are_verbatim_spans_of_the_document() -> None:
    text = "First paragraph, one sentence.\n\nSecond paragraph. It has two sentences.\n\n\nThird."
    chunks = chunk_text(text, max_tokens=1000)
    assert chunks == [text]
    small = chunk_text(text, max_tokens=10)
    assert all(chunk in text for chunk in small)
    assert small[0] == "First paragraph, one sentence."


def test_sizes_fill_up_to_max_tokens() -> None:
    text = " ".join(f"This is sentence {i}." for i in range(400))
    chunks = chunk_text(text, max_tokens=100)
    sizes = [approx_token_count(c) for c in chunks]
    assert max(sizes) <= 100
    # Every chunk but the last is nearly full: sentences are ~7 tokens, each count rounds up by < 1.
    assert min(sizes[:-1]) >= 80


def test_long_sentence_is_split_on_word_boundaries() -> None:
    long_sentence = words(500) + "."
    text = "Short one. " + long_sentence + " Short two."
    chunks = chunk_text(text, max_tokens=50)
    assert chunks[0] == "Short one."
    assert chunks[-1] == "Short two."
    middle = chunks[1:-1]
    assert all(approx_token_count(c) <= 50 for c in middle)
    assert all(set(c.rstrip(".").split()) == {"word"} for c in middle)  # whole words only
    assert " ".join(middle) == long_sentence


def test_a_word_longer_than_max_tokens_is_cut() -> None:
    blob = "x" * 5000
    chunks = chunk_text(blob, max_tokens=10)
    assert "".join(chunks) == blob
    assert all(approx_token_count(c) <= 10 for c in chunks)
    assert sum(len(c) == 64 for c in chunks) >= 75  # 64 characters: 8 pieces, 10 tokens


def test_custom_token_counter_is_used() -> None:
    text = "One two three. Four five six. Seven eight nine."
    chunks = chunk_text(text, max_tokens=3, count_tokens=lambda s: len(s.split()))
    assert chunks == ["One two three.", "Four five six.", "Seven eight nine."]


@pytest.mark.parametrize("text", ["", "   \n\n\t  "])
def test_empty_text_gives_no_chunks(text: str) -> None:
    assert chunk_text(text) == []


def test_unicode_text() -> None:
    text = "Guillermo Ramírez scored in Frisco. 東京は日本の首都です。 Ça va très bien! Ελληνικά κείμενα εδώ."
    chunks = chunk_text(text, max_tokens=12)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
    assert chunks[0] == "Guillermo Ramírez scored in Frisco."


def test_sentence_spans_cover_long_lines_without_breaks() -> None:
    text = "Alpha beta gamma. " * 2000  # 36 kB on one line: cut into blocks before pysbd
    spans = list(sentence_spans(text))
    assert len(spans) == 2000
    assert all(text[s:e] == "Alpha beta gamma." for s, e in spans)


def test_chunk_document_uses_document_text() -> None:
    doc = Document.create("A first sentence. A second sentence.", title="t")
    assert chunk_document(doc, max_tokens=5) == ["A first sentence.", "A second sentence."]


def test_approx_token_count_tracks_a_subword_tokenizer() -> None:
    # 1.2 per piece (see the module comment for the measurement).
    assert approx_token_count("") == 0
    assert approx_token_count("Hello, world!") == 5  # 4 pieces
    assert approx_token_count("東京は日本") == 6  # one piece per CJK character
    assert approx_token_count("x" * 800) == 120  # 100 pieces: 1 + 99 for its length


@pytest.mark.slow
def test_five_megabytes_chunk_in_reasonable_time() -> None:
    """Speed sanity (not a timed assertion): prints the time for 5 MB of Wikipedia-style text."""
    if DEMO_CORPUS.exists():
        records = json.loads(DEMO_CORPUS.read_text(encoding="utf-8"))
        base = "\n\n".join(f"{r['title']}\n{r['text']}" for r in records)
    else:
        base = "\n\n".join(f"Paragraph {i}. It mentions Dr. Who and the U.K. in 1963." for i in range(2000))
    text = (base * (5_000_000 // len(base) + 1))[:5_000_000]
    start = time.perf_counter()
    chunks = chunk_text(text)
    seconds = time.perf_counter() - start
    print(f"\nchunked 5 MB into {len(chunks)} chunks in {seconds:.1f} s")
    assert len(chunks) > 1000
    assert max(approx_token_count(c) for c in chunks) <= 256
