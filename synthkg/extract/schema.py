"""What an extractor produces for one chunk: the shared format of the multi-step teacher, the
training set and the distilled student."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ExtractedEntity(BaseModel):
    name: str = Field(min_length=1)
    type: str = ""


class Quadruple(BaseModel):
    subject: str = Field(min_length=1)
    relation: str = Field(min_length=1)
    object: str = Field(min_length=1)
    proposition: str = Field(min_length=1, description="a self-contained sentence stating the fact")


class ChunkGraph(BaseModel):
    """A chunk's whole graph."""

    entities: list[ExtractedEntity] = Field(default_factory=list)
    quadruples: list[Quadruple] = Field(default_factory=list)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()
