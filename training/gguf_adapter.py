"""A peft LoRA adapter as a llama.cpp LoRA adapter (GGUF), so the distilled student runs on llama.cpp over
its quantized GGUF base: several times faster on a CPU than transformers in fp32, and with llama.cpp's
JSON-schema grammar for constrained re-asks.

The student is trained on the GGUF base dequantized into transformers' layout. llama.cpp's converter
permutes the rows of a llama model's q and k projections (its rotary layout); transformers undoes that
when it loads the GGUF, so the adapter's B matrices for q and k get the same permutation here. Only the
tensor layout changes: the adapter's weights and scale (alpha / r) are written as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.student import adapter_config

ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Architectures whose llama.cpp layout is known here; llama permutes q/k rows, qwen2 does not.
PERMUTED_QK = {"llama": True, "qwen2": False}
# peft's key prefix in front of the transformers module name.
PEFT_PREFIX = "base_model.model."


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        raise TrainingError(f"{key} missing from the base GGUF's metadata")
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
        raise TrainingError(f"{adapter_dir}: llama.cpp adapters cannot hold {', '.join(unsupported)}")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r); llama.cpp always divides by r.
    return alpha * rank**0.5 if config.get("use_rslora") else alpha


def export_lora_gguf(adapter_dir: str | Path, base_gguf: str | Path, output: str | Path) -> Path:
    """Write the LoRA adapter in `adapter_dir` (peft's folder) as a llama.cpp adapter for `base_gguf`.
    Written to a temporary name and renamed, so an interrupted export never leaves a partial file."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir, output = Path(adapter_dir), Path(output)
    weights_file = adapter_dir / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        raise TrainingError(f"no {ADAPTER_WEIGHTS} in {adapter_dir}")
    config = adapter_config(adapter_dir)
    alpha = _lora_scale_alpha(config, adapter_dir)

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(_field(reader, "general.architecture"))
    if arch not in PERMUTED_QK:
        raise TrainingError(f"base architecture {arch!r} is not supported for llama.cpp adapters yet")
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
            raise TrainingError(f"{weights_file}: no llama.cpp tensor for {key!r}")
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
