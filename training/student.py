"""Base models and the distilled student: what a base-model name means, loading it (with a LoRA
adapter), merging the adapter in, and generating a chunk's graph.

A base model is a local model name (smollm2-135m, qwen2.5-coder-0.5b, ... see `synthkg models`), a .gguf
file, or a transformers model folder. A GGUF file is dequantized to fp32 once and saved as a transformers
folder under `<cache_dir>/hf-models/`, so that every later load (training, resuming, the student) takes
about a second instead of 10-30 s (on disk: SmolLM2-135M 0.5 GB, Qwen-0.5B 2 GB).

An adapter records its base's identity (the local model name, or the absolute path) as peft's
`base_model_name_or_path`; it is checked before anything is loaded, so an adapter is never silently
applied to a model it was not trained for. torch, transformers and peft (`synthkg[train]`) are imported
on first use.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from synthkg.config import default_cache_dir
from synthkg.llm.adapters import AdapterError
from synthkg.llm.adapters import adapter_config as read_adapter_config
from synthkg.llm.base import LLMError
from synthkg.llm.local_models import LOCAL_MODELS, resolve_model_path
from synthkg.model import content_hash
from training.dataset import DEFAULT_USER_TEMPLATE, chat_messages
from training.errors import TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModelRef:
    identity: str  # what adapters record: a local model name or an absolute path
    path: Path  # a .gguf file or a transformers model folder

    @property
    def is_gguf(self) -> bool:
        return self.path.suffix == ".gguf"


def resolve_base(base_model: str | Path, cache_dir: Path | None = None) -> BaseModelRef:
    """The base model a name or path means; raises TrainingError when it does not exist. A local model
    shipped in parts is assembled into `cache_dir` on first use."""
    text = str(base_model)
    if text in LOCAL_MODELS:
        try:
            return BaseModelRef(text, resolve_model_path(text, cache_dir or default_cache_dir()))
        except LLMError as exc:
            raise TrainingError(f"base model {text!r}: {exc}") from None
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        if not path.is_file():
            raise TrainingError(f"base model file not found: {path}")
        # The same file given by path is the same base as the local model of that name.
        known = next((m.name for m in LOCAL_MODELS.values() if m.file_name == path.name), None)
        return BaseModelRef(known or str(path.resolve()), path.resolve())
    if (path / "config.json").is_file():
        return BaseModelRef(str(path.resolve()), path.resolve())
    raise TrainingError(
        f"base model not found: {text!r} is not a local model name ({', '.join(sorted(LOCAL_MODELS))}), "
        "an existing .gguf file, or a transformers model folder (with config.json)"
    )


def import_torch(threads: int | None) -> Any:
    # Everything is local; transformers must never try the model hub (read when it is first imported).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import peft  # noqa: F401  (fail here, not halfway through a run)
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise TrainingError(
            f"training needs torch, transformers and peft: pip install 'synthkg[train]' ({exc})"
        ) from None
    if threads:  # otherwise torch's default: $OMP_NUM_THREADS, else the cores it may use
        torch.set_num_threads(threads)
    return torch


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize `gguf` into the transformers folder `target`, written aside and renamed into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a transformers folder (once): %s", gguf, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are fp32 now; save_pretrained refuses a model that still claims to be quantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"could not convert {gguf} into {target}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_folder(ref: BaseModelRef, cache_dir: Path | None = None, threads: int | None = None) -> Path:
    """A transformers folder holding the base model: the folder itself, or the GGUF file's conversion
    in the cache (made on first use; keyed by path, size and mtime, so a replaced file converts anew)."""
    if not ref.is_gguf:
        return ref.path
    stat = ref.path.stat()
    key = content_hash(f"{ref.path}\x1f{stat.st_size}\x1f{stat.st_mtime_ns}")[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ref.path.stem)
    target = Path(cache_dir or default_cache_dir()) / "hf-models" / f"{slug}-{key}"
    if not (target / "config.json").is_file():
        import_torch(threads)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Two runs starting at once (or DDP ranks) must not both convert.
        with FileLock(str(target) + ".lock"):
            if not (target / "config.json").is_file():
                _convert_gguf(ref.path, target)
    return target


def load_tokenizer(ref: BaseModelRef, cache_dir: Path | None = None, threads: int | None = None) -> Any:
    """The base's tokenizer (with a pad token: the end-of-sequence token when it has none)."""
    folder = model_folder(ref, cache_dir, threads)
    import_torch(threads)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"could not load the tokenizer of {ref.identity} from {folder}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise TrainingError(f"base model {ref.identity} has no chat template; use an instruct model")
    return tokenizer


def load_model(ref: BaseModelRef, cache_dir: Path | None = None, threads: int | None = None) -> Any:
    """The base model in fp32. Its `name_or_path` is set to the base's identity, which peft records
    in every adapter trained on it."""
    folder = model_folder(ref, cache_dir, threads)
    torch = import_torch(threads)
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"could not load base model {ref.identity} from {folder}: {exc}") from None
    model.name_or_path = ref.identity
    return model


def adapter_config(adapter_dir: str | Path) -> dict[str, Any]:
    """The adapter folder's adapter_config.json (read by synthkg.llm.adapters); errors as TrainingError."""
    try:
        return read_adapter_config(adapter_dir)
    except AdapterError as exc:
        raise TrainingError(str(exc)) from None


def check_adapter(adapter_dir: str | Path, ref: BaseModelRef) -> dict[str, Any]:
    """The adapter's config, after checking that it was trained for `ref`."""
    config = adapter_config(adapter_dir)
    recorded = config.get("base_model_name_or_path")
    if recorded and recorded != ref.identity:
        raise TrainingError(
            f"adapter {adapter_dir} was trained for base model {recorded!r}, not {ref.identity!r}: "
            f"use --base-model {recorded}"
        )
    return config


def load_student(
    base_model: str | Path,
    adapter_dir: str | Path | None,
    *,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode: the base with the LoRA adapter applied (unmerged), or the bare
    base when `adapter_dir` is None."""
    ref = resolve_base(base_model, cache_dir)
    if adapter_dir is not None:
        check_adapter(adapter_dir, ref)
    tokenizer = load_tokenizer(ref, cache_dir, threads)
    model = load_model(ref, cache_dir, threads)
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"could not apply adapter {adapter_dir} to {ref.identity}: {exc}") from None
    model.eval()
    return model, tokenizer


def save_merged(peft_model: Any, tokenizer: Any, output_dir: str | Path) -> Path:
    """Fold the LoRA weights into the base and save a plain transformers folder (no peft needed to
    load it). Changes `peft_model`'s base weights in place."""
    output_dir = Path(output_dir)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def merge_adapter(
    base_model: str | Path,
    adapter_dir: str | Path,
    output_dir: str | Path,
    *,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Path:
    """A merged copy of base + adapter in `output_dir`; load it as a base model folder."""
    model, tokenizer = load_student(base_model, adapter_dir, cache_dir=cache_dir, threads=threads)
    return save_merged(model, tokenizer, output_dir)


def generate_graph(
    model: Any,
    tokenizer: Any,
    chunk_text: str,
    system_prompt: str,
    max_new_tokens: int = 1024,
    *,
    user_template: str = DEFAULT_USER_TEMPLATE,
    repetition_penalty: float = 1.0,
) -> str:
    """The student's raw answer for one chunk (greedy), prompted exactly as in training; the distilled
    extractor parses it."""
    import torch

    messages = chat_messages(system_prompt, user_template, chunk_text)
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(model.device)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
