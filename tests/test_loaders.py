from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from synthkg.loaders import load_documents
from synthkg.model import Document, stable_id

DEMO_CORPUS = Path("/work/shared/data/multihop/demo_hoprag/corpus.json")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def only_error(result, path: Path) -> str:  # type: ignore[no-untyped-def]
    assert [e.path for e in result.errors] == [path], result.errors
    return result.errors[0].message


# --- text files ---------------------------------------------------------------------------------


def test_txt_title_is_stem_and_key_is_resolved_path(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "# not a heading in txt\nSome text.")
    result = load_documents([path])
    assert result.errors == []
    (doc,) = result.documents
    assert doc.title == "notes"
    assert doc.text == "# not a heading in txt\nSome text."
    assert doc.id == stable_id("doc", str(path.resolve()))
    assert doc.source == str(path)


def test_markdown_title_is_first_heading(tmp_path: Path) -> None:
    path = write(tmp_path / "page.md", "Intro line.\n\n## The Real Title ##\n\nBody.\n\n# Later\n")
    (doc,) = load_documents([path]).documents
    assert doc.title == "The Real Title"


def test_markdown_without_heading_uses_stem(tmp_path: Path) -> None:
    (doc,) = load_documents([write(tmp_path / "plain.md", "Just text.")]).documents
    assert doc.title == "plain"


def test_same_path_same_id_changed_text_same_id(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "Version one.")
    first = load_documents([path]).documents[0]
    write(path, "Version two.")
    second = load_documents([path]).documents[0]
    assert first.id == second.id
    assert first.content_hash != second.content_hash


# --- JSON and JSONL -----------------------------------------------------------------------------


def test_json_list_of_records(tmp_path: Path) -> None:
    records = [
        {"id": "p1", "title": "One", "text": "First.", "lang": "en"},
        {"id": 2, "title": "Two", "text": "Second."},
    ]
    path = write(tmp_path / "corpus.json", json.dumps(records))
    result = load_documents([path])
    assert result.errors == []
    one, two = result.documents
    assert one == Document.create("First.", title="One", source=str(path), key="p1", metadata={"lang": "en"})
    assert two.id == stable_id("doc", "2")


def test_json_single_record(tmp_path: Path) -> None:
    path = write(tmp_path / "one.json", json.dumps({"id": "x", "title": "T", "text": "Body."}))
    (doc,) = load_documents([path]).documents
    assert (doc.title, doc.text, doc.id) == ("T", "Body.", stable_id("doc", "x"))


def test_records_without_id_are_keyed_by_place(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", json.dumps([{"text": "A."}, {"text": "B."}]))
    docs = load_documents([path]).documents
    assert docs[0].id != docs[1].id
    assert [d.id for d in load_documents([path]).documents] == [d.id for d in docs]


def test_json_bad_records_are_reported_and_the_rest_loaded(tmp_path: Path) -> None:
    records = [
        {"id": "ok", "text": "Fine."},
        {"id": "no-text", "title": "T"},
        {"text": 5},
        "str",
        {"text": " "},
    ]
    path = write(tmp_path / "c.json", json.dumps(records))
    result = load_documents([path])
    assert [d.text for d in result.documents] == ["Fine."]
    messages = [e.message for e in result.errors]
    assert messages == [
        "record 1: record has no 'text' field",
        "record 2: 'text' must be a string, got int",
        "record 3: expected an object with 'text', got str",
        "record 4: empty document, skipped",
    ]


def test_invalid_json_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '[\n  {"text": "a"},\n  {"text": }\n]')
    result = load_documents([path])
    assert result.documents == []
    assert only_error(result, path).startswith("invalid JSON at line 3, column 12")


def test_json_of_wrong_shape(tmp_path: Path) -> None:
    path = write(tmp_path / "n.json", "42")
    assert "expected a list of" in only_error(load_documents([path]), path)


def test_jsonl_streams_and_reports_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "Alpha."}),
        "",
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "c", "text": "Gamma."}),
    ]
    path = write(tmp_path / "c.jsonl", "\n".join(lines) + "\n")
    result = load_documents([path])
    assert [d.text for d in result.documents] == ["Alpha.", "Gamma."]
    assert [e.message for e in result.errors] == [
        "line 3: invalid JSON at column 2: Expecting property name enclosed in double quotes",
        "line 4: record has no 'text' field",
    ]


def test_jsonl_limit_stops_reading(tmp_path: Path) -> None:
    lines = [json.dumps({"id": str(i), "text": f"Doc {i}."}) for i in range(5)] + ["{broken"]
    path = write(tmp_path / "c.jsonl", "\n".join(lines))
    result = load_documents([path], limit=3)
    assert [d.text for d in result.documents] == ["Doc 0.", "Doc 1.", "Doc 2."]
    assert result.errors == []  # the broken line is never reached


# --- encodings and bad files --------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_byte_order_marks_are_detected(tmp_path: Path, encoding: str) -> None:
    text = "Zoë went to Zürich. 東京."
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the -be codec writes no BOM
    path = write(tmp_path / "bom.txt", data)
    result = load_documents([path])
    assert result.errors == []
    assert result.documents[0].text == text


def test_utf16_jsonl_with_bom(tmp_path: Path) -> None:
    content = json.dumps({"id": "a", "text": "Zoë."}, ensure_ascii=False) + "\n"
    path = write(tmp_path / "c.jsonl", content.encode("utf-16"))
    assert [d.text for d in load_documents([path]).documents] == ["Zoë."]


def test_wrong_encoding_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.txt", "Zoë went to Zürich.".encode("latin-1"))
    message = only_error(load_documents([path]), path)
    assert "not valid UTF-8 text" in message and "re-encode" in message


def test_wrong_encoding_in_jsonl_names_the_line(tmp_path: Path) -> None:
    good = json.dumps({"text": "ok"}).encode() + b"\n"
    bad = '{"text": "Zoë"}\n'.encode("latin-1")
    path = write(tmp_path / "c.jsonl", good + bad)
    result = load_documents([path])
    assert [d.text for d in result.documents] == ["ok"]
    assert only_error(result, path).startswith("line 2: not valid UTF-8 text")
    write(path, bad + good)
    assert [d.text for d in load_documents([path]).documents] == ["ok"]  # later lines still load


@pytest.mark.parametrize("name", ["image.txt", "data.jsonl", "data.json"])
def test_binary_file_is_rejected(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "binary file" in only_error(load_documents([path]), path)


def test_empty_document_is_skipped_with_message(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.txt", " \n\t\n")
    result = load_documents([path])
    assert result.documents == []
    assert only_error(result, path) == "empty document, skipped"


def test_unsupported_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "paper.pdf", b"%PDF-1.4")
    message = only_error(load_documents([path]), path)
    assert message.startswith("unsupported file type '.pdf'") and ".jsonl" in message


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    assert only_error(load_documents([path]), path) == "no such file or directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "hidden")
    path.chmod(0)
    try:
        assert "cannot read" in only_error(load_documents([path]), path)
    finally:
        path.chmod(0o600)


def test_unreadable_file_as_seen_by_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same failure where tests run as root: reading raises PermissionError."""
    path = write(tmp_path / "secret.txt", "hidden")
    other = write(tmp_path / "fine.txt", "Readable.")
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = load_documents([path, other])
    assert [d.text for d in result.documents] == ["Readable."]
    assert only_error(result, path) == "cannot read: Permission denied"


def test_unlistable_directory_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    write(locked / "a.txt", "A.")
    write(tmp_path / "open" / "b.txt", "B.")
    original = os.scandir

    def scandir(path: str | Path) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = load_documents([tmp_path])
    assert [d.text for d in result.documents] == ["B."]
    assert only_error(result, locked) == "cannot list directory: Permission denied"


def test_huge_document_loads(tmp_path: Path) -> None:
    text = ("A fairly ordinary sentence about a river. " * 120_000)[:5_000_000]
    path = write(tmp_path / "huge.txt", text)
    (doc,) = load_documents([path]).documents
    assert len(doc.text) == 5_000_000


# --- directories --------------------------------------------------------------------------------


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "B.")
    write(tmp_path / "a" / "z.md", "# Z\nZ.")
    write(tmp_path / "a" / "y.txt", "Y.")
    write(tmp_path / "c" / "records.jsonl", json.dumps({"id": "r", "text": "R."}))
    write(tmp_path / ".hidden" / "h.txt", "H.")
    write(tmp_path / ".secret.txt", "S.")
    write(tmp_path / "skip.png", b"\x89PNG\x00")
    result = load_documents([tmp_path])
    assert result.errors == []
    assert [d.text for d in result.documents] == ["Y.", "# Z\nZ.", "B.", "R."]


def test_a_file_reached_twice_loads_once_and_limit_spans_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "A.")
    write(tmp_path / "b.txt", "B.")
    write(tmp_path / "c.txt", "C.")
    result = load_documents([a, tmp_path], limit=2)
    assert [d.text for d in result.documents] == ["A.", "B."]
    assert load_documents([tmp_path], limit=0).documents == []


def test_demo_corpus_with_limit() -> None:
    if not DEMO_CORPUS.exists():
        pytest.skip(f"{DEMO_CORPUS} not present")
    result = load_documents([DEMO_CORPUS], limit=25)
    assert result.errors == []
    assert len(result.documents) == 25
    first = result.documents[0]
    assert first.id == stable_id("doc", "demo-00000")
    assert first.title == "MLS Cup 2005"
    assert first.text.startswith("MLS Cup 2005, the 10th edition")
