"""LoRA adapters as the runtime serves them: an adapter folder's config (the base it was trained for),
and the folder exported as a llama.cpp LoRA adapter (GGUF), so the distilled student runs on llama.cpp over
its quantized GGUF base: several times faster on a CPU than transformers in fp32, and with llama.cpp's
grammars for constrained output. `training/` writes these folders; this module only reads them, so the
runtime never imports the training package.

The student is trained on the GGUF base dequantized into transformers' layout. llama.cpp's converter
permutes the rows of a llama model's q and k projections (its rotary layout); transformers undoes that
when it loads the GGUF, so the adapter's B matrices for q and k get the same permutation here. Only the
tensor layout changes: the adapter's weights and scale (alpha / r) are written as they are."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from synthkg.llm.base import LLMError

SHIPPED_PACKAGE = "training"  # the package whose adapters/ folder holds the shipped students
SHIPPED_STUDENT = "qwen2.5-coder-0.5b-synthkg-lines-3ep"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Architectures whose llama.cpp layout is known here; llama permutes q/k rows, qwen2 does not.
PERMUTED_QK = {"llama": True, "qwen2": False}
# peft's key prefix in front of the transformers module name.
PEFT_PREFIX = "base_model.model."


class AdapterError(LLMError):
    """An adapter folder that cannot be read or served: no or unreadable adapter_config.json, missing
    weights, or something llama.cpp adapters cannot hold. The message names the folder."""


def shipped_adapters_dir() -> Path:
    """The folder of the adapters shipped with synthkg (package data of `training`), found without
    importing that package: the runtime sits below it."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AdapterError(f"the {SHIPPED_PACKAGE} package (the student adapters' home) is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "adapters"


def shipped_student_path() -> Path:
    """The default distilled extractor: a LoRA adapter for Qwen2.5-Coder-0.5B shipped in the package, which
    writes the graph in the line format (synthkg.extract.lines: ~0.65x the tokens of JSON; 5.1-5.7x the
    passages per hour of the JSON student before it on 2 cores, with the same triple F1 against the
    teacher within the chunks' noise). Beside it: the JSON student it replaced
    (qwen2.5-coder-0.5b-synthkg) and a SmolLM2-135M one, smaller and CPU-retrainable, that extracts about
    a third as well."""
    return shipped_adapters_dir() / SHIPPED_STUDENT


def adapter_config(adapter_dir: str | Path) -> dict[str, Any]:
    """The adapter folder's adapter_config.json (peft's LoRA settings and the base it was trained for)."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise AdapterError(f"not a LoRA adapter folder (no adapter_config.json): {adapter_dir}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"unreadable adapter config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"unreadable adapter config {path}: not a JSON object")
    return config


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        raise AdapterError(f"{key} missing from the base GGUF's metadata")
    return field.contents()


def _permute_rows(weights: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order (convert_hf_to_gguf's LlamaModel.permute) applied to a B matrix."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _lora_scale_alpha(config: dict[str, Any], adapter_dir: Path) -> float:
    """The alpha that makes llama.cpp's scale (alpha / r) equal peft's."""
    unsupported = [
        name
        for name, bad in (
            ("DoRA", config.get("use_dora")),
            ("per-module ranks (rank_pattern)", config.get("rank_pattern")),
            ("per-module alphas (alpha_pattern)", config.get("alpha_pattern")),
            ("modules_to_save", config.get("modules_to_save")),
            ("LoRA biases", config.get("bias", "none") != "none" or config.get("lora_bias")),
        )
        if bad
    ]
    if unsupported:
        raise AdapterError(f"{adapter_dir}: llama.cpp adapters cannot hold {', '.join(unsupported)}")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r); llama.cpp always divides by r.
    return alpha * rank**0.5 if config.get("use_rslora") else alpha


def export_lora_gguf(adapter_dir: str | Path, base_gguf: str | Path, output: str | Path) -> Path:
    """Write the LoRA adapter in `adapter_dir` (peft's folder) as a llama.cpp adapter for `base_gguf`.
    Written to a temporary name and renamed, so an interrupted export never leaves a partial file."""
    try:  # optional dependencies (the train extra): only exporting needs them
        import gguf
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise AdapterError(
            f"exporting the adapter {adapter_dir} for llama.cpp needs gguf and safetensors: "
            f"pip install 'synthkg[train]' ({exc})"
        ) from exc

    adapter_dir, output = Path(adapter_dir), Path(output)
    weights_file = adapter_dir / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        raise AdapterError(f"no {ADAPTER_WEIGHTS} in {adapter_dir}")
    config = adapter_config(adapter_dir)
    alpha = _lora_scale_alpha(config, adapter_dir)

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(_field(reader, "general.architecture"))
    if arch not in PERMUTED_QK:
        raise AdapterError(f"base architecture {arch!r} is not supported for llama.cpp adapters yet")
    blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv"))
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_id, blocks)

    tensors = load_file(str(weights_file))
    writer_tensors: dict[str, Any] = {}
    for key, value in tensors.items():
        module, _, kind = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        gguf_name = names.get_name(module)
        if gguf_name is None or kind not in ("A.weight", "B.weight"):
            raise AdapterError(f"{weights_file}: no llama.cpp tensor for {key!r}")
        if kind == "B.weight" and PERMUTED_QK[arch] and module.endswith(("q_proj", "k_proj")):
            value = _permute_rows(value, n_head if module.endswith("q_proj") else n_head_kv)
        suffix = "lora_a" if kind == "A.weight" else "lora_b"
        writer_tensors[f"{gguf_name}.weight.{suffix}"] = value.astype("float32")

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name in sorted(writer_tensors):
        writer.add_tensor(name, writer_tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(output)
    return output
