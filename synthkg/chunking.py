"""Sentence-aligned chunks of about `max_tokens` tokens, without overlap.

Chunks are verbatim spans of the document (whitespace between sentences kept), so a chunk's text can
always be found in its document. Sentences come from pysbd; a sentence longer than `max_tokens` is cut
on word boundaries (and a "word" longer than that, e.g. a base64 blob, on characters)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence

import pysbd

from synthkg.model import Document

TokenCounter = Callable[[str], int]

DEFAULT_MAX_TOKENS = 256

# A piece is a word, a punctuation mark or one CJK character (those scripts have no spaces), plus one
# more for every 8 characters of a long word (URLs, identifiers, blobs). Qwen2.5's tokenizer spends
# 1.14 tokens per such piece on average over the 399 demo_hoprag passages (0.95-1.35 from the 10th to
# the 90th percentile); 1.2 errs towards smaller chunks.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_PIECE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_LONG_PIECE = 8
TOKENS_PER_PIECE = 1.2


def approx_token_count(text: str) -> int:
    """Fast estimate of a subword tokenizer's count (see TOKENS_PER_PIECE)."""
    pieces = _PIECE.findall(text)
    extra = sum((len(p) - 1) // _LONG_PIECE for p in pieces if len(p) > _LONG_PIECE)
    return math.ceil((len(pieces) + extra) * TOKENS_PER_PIECE)


# pysbd's cost grows faster than the text's length: it only ever sees blocks of at most this many
# characters (paragraphs, cut further when longer).
_MAX_BLOCK_CHARS = 2000
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_BLOCK_CUTS = (re.compile(r"\n"), re.compile(r"[.!?][\"')\]]*\s+"), re.compile(r"\s+"))


def chunk_text(
    text: str, max_tokens: int = DEFAULT_MAX_TOKENS, count_tokens: TokenCounter = approx_token_count
) -> list[str]:
    """Split `text` into chunks of at most `max_tokens` (by `count_tokens`), each a run of whole
    sentences unless one sentence alone is too long."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    chunks: list[str] = []
    start = end = 0  # span of the chunk being built
    used = 0
    for s_start, s_end in sentence_spans(text):
        size = count_tokens(text[s_start:s_end])
        if used and used + size > max_tokens:
            chunks.append(text[start:end])
            used = 0
        if size > max_tokens:
            chunks.extend(_split_long(text[s_start:s_end], max_tokens, count_tokens))
            used = 0
            continue
        if not used:
            start = s_start
        end = s_end
        used += size
    if used:
        chunks.append(text[start:end])
    return chunks


def chunk_document(
    doc: Document, max_tokens: int = DEFAULT_MAX_TOKENS, count_tokens: TokenCounter = approx_token_count
) -> list[str]:
    return chunk_text(doc.text, max_tokens, count_tokens)


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every sentence, whitespace around it excluded, in order."""
    segmenter = pysbd.Segmenter(language="en", clean=False)
    for b_start, b_end in _blocks(text):
        block = text[b_start:b_end]
        cursor = 0
        # processor().process() is segment() without its regex re-location of each sentence (done
        # here with str.find): 2.3x faster, same sentences.
        for sentence in segmenter.processor(block).process():
            stripped = sentence.strip()
            if not stripped:
                continue
            found = block.find(stripped, cursor)
            if found < 0:  # pysbd altered the text: give up on finer splits for the rest of the block
                rest = block[cursor:].strip()
                if rest:
                    found = block.index(rest, cursor)
                    yield b_start + found, b_start + found + len(rest)
                break
            cursor = found + len(stripped)
            yield b_start + found, b_start + cursor


def _blocks(text: str) -> Iterator[tuple[int, int]]:
    """Spans of paragraphs, each cut further (at line breaks, then sentence-like ends, then spaces,
    then anywhere) until it is at most _MAX_BLOCK_CHARS long."""
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        yield from _cap(text, start, match.start(), 0)
        start = match.end()
    yield from _cap(text, start, len(text), 0)


def _cap(text: str, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
    if end - start <= _MAX_BLOCK_CHARS:
        if text[start:end].strip():
            yield start, end
        return
    if level == len(_BLOCK_CUTS):
        for pos in range(start, end, _MAX_BLOCK_CHARS):
            yield pos, min(pos + _MAX_BLOCK_CHARS, end)
        return
    # Cut at the last separator before each limit so the pieces stay as large as allowed.
    pattern = _BLOCK_CUTS[level]
    while end - start > _MAX_BLOCK_CHARS:
        limit = start + _MAX_BLOCK_CHARS
        cut = None
        for match in pattern.finditer(text, start + 1, limit):
            cut = match
        if cut is None:
            following = pattern.search(text, limit, end)
            stop = following.end() if following else end
            yield from _cap(text, start, stop, level + 1)
            start = stop
        else:
            yield from _cap(text, start, cut.end(), level + 1)
            start = cut.end()
    if start < end and text[start:end].strip():
        yield start, end


def _split_long(sentence: str, max_tokens: int, count_tokens: TokenCounter) -> list[str]:
    """Cut an over-long sentence on word boundaries into pieces of at most max_tokens."""
    words = re.findall(r"\S+\s*", sentence)
    pieces: list[str] = []
    while words:
        take = _longest_prefix(words, max_tokens, count_tokens)
        if take == 0:
            # A "word" without spaces has no better boundary than a character.
            word = words.pop(0).strip()
            while word:
                cut = max(1, _longest_prefix(word, max_tokens, count_tokens))
                pieces.append(word[:cut])
                word = word[cut:]
        else:
            pieces.append("".join(words[:take]).strip())
            del words[:take]
    return pieces


def _longest_prefix(items: Sequence[str], max_tokens: int, count_tokens: TokenCounter) -> int:
    """The largest k with count_tokens("".join(items[:k])) <= max_tokens (a binary search). Counting
    the joined prefix rather than summing per-item counts: an estimate rounded up per word would
    double-count."""
    lo, hi = 0, len(items)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens("".join(items[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return lo
