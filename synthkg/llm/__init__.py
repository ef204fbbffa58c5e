"""LLM backends behind one ChatBackend protocol, the on-disk call cache and the local model registry.
Backend modules with optional dependencies (llama.cpp, transformers) import them on first use."""

from synthkg.llm.base import ChatBackend, ChatResult, LLMError, Message
from synthkg.llm.cache import CachedBackend, StageUsage, Usage
from synthkg.llm.factory import ChatRequest, make_backend, map_chat
from synthkg.llm.local_models import list_local_models, resolve_model_path

__all__ = [
    "CachedBackend",
    "ChatBackend",
    "ChatRequest",
    "ChatResult",
    "LLMError",
    "Message",
    "StageUsage",
    "Usage",
    "list_local_models",
    "make_backend",
    "map_chat",
    "resolve_model_path",
]
