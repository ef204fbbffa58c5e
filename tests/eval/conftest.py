"""Fixtures for the evaluation tests: the shared multi-hop data and one real embedder per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthkg.embeddings import SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def multihop_dir() -> Path:
    """The shared benchmark folder: $SYNTHKG_MULTIHOP_DIR, else shared/ beside the repository (as on
    the dev machines and in CI)."""
    path = Path(os.environ.get("SYNTHKG_MULTIHOP_DIR", REPO.parent / "shared" / "data" / "multihop"))
    if not path.is_dir():
        pytest.skip(f"shared multi-hop data not found at {path}")
    return path


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()
