"""Graph stores: the embedded default (networkx on disk) and Neo4j over Bolt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from synthkg.store.base import GraphStore, StoreError, StoreLockedError, StoreUnavailableError

if TYPE_CHECKING:
    from synthkg.config import StoreSettings

__all__ = ["GraphStore", "StoreError", "StoreLockedError", "StoreUnavailableError", "open_store"]


def open_store(settings: StoreSettings, *, read_only: bool = False) -> GraphStore:
    """The store the settings name. `read_only` opens the embedded store without its write lock."""
    if settings.backend == "embedded":
        from synthkg.store.embedded import EmbeddedStore

        return EmbeddedStore(settings.path, read_only=read_only)
    from synthkg.store.neo4j import Neo4jStore

    return Neo4jStore.from_settings(settings)
