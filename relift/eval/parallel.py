"""How an evaluation spreads over the visible GPUs: vLLM tensor parallelism within a copy of the model,
independent copies (data parallelism) across the rest. Pure Python.

vLLM shards a model's attention over `tensor` GPUs only when `tensor` divides its attention heads, and its
KV heads either divide among them (`kv % tensor == 0`) or are replicated (`tensor % kv == 0`)
(vllm/config/model.py, verify_with_parallel_config; QKVParallelLinear). Qwen2.5-Math-7B (28 heads, 4 KV
heads) therefore takes 1, 2 or 4 GPUs a copy, not 8; Qwen2.5-Math-1.5B (12 heads, 2 KV heads) 1, 2, 4 or
6. Small copies evaluate fastest: the default is the smallest such size whose share of the weights fits
in half of a GPU's memory (the rest is for the KV cache), and as many copies as the GPUs hold.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS_SHARE = 0.5
"""The most of a GPU's memory a copy's shard of the weights may take by default."""


@dataclass(frozen=True)
class Parallelism:
    tensor: int
    """GPUs per copy of the model (vLLM's tensor_parallel_size)."""
    data: int
    """Copies of the model, each on its own GPUs."""


def tensor_sizes(heads: int, kv_heads: int, gpus: int) -> list[int]:
    """The tensor-parallel sizes vLLM accepts for these heads that divide `gpus`, smallest first."""
    return [t for t in range(1, gpus + 1)
            if gpus % t == 0 and heads % t == 0 and (kv_heads % t == 0 or t % kv_heads == 0)]


def plan(heads: int, kv_heads: int, gpus: int, tensor: int | None = None, weight_bytes: int | None = None,
         gpu_bytes: int | None = None) -> Parallelism:
    """The parallelism of an evaluation on `gpus` GPUs (0: CPU, one copy). `tensor`: the size asked for, or
    None for the default (module docstring; without `weight_bytes` and `gpu_bytes`, one GPU a copy).

    Raises ValueError, naming the heads, the size and the sizes that work, for a size vLLM would refuse or
    that leaves GPUs idle, and when no size fits the weights."""
    if gpus == 0:
        return Parallelism(1, 1)
    sizes = tensor_sizes(heads, kv_heads, gpus)
    model = f"{heads} attention heads and {kv_heads} KV heads"
    if tensor is not None:
        if tensor not in sizes:
            raise ValueError(f"--tensor-parallel-size {tensor} does not fit {model} on {gpus} GPU(s) (vLLM shards "
                             f"heads evenly, and copies take all the GPUs): use one of {sizes}")
        return Parallelism(tensor, gpus // tensor)
    if weight_bytes is None or gpu_bytes is None:
        return Parallelism(1, gpus)
    fitting = [t for t in sizes if weight_bytes / t <= WEIGHTS_SHARE * gpu_bytes]
    if not fitting:
        raise ValueError(f"the model's {weight_bytes / 2**30:.1f} GiB of weights do not fit {gpus} GPU(s) of "
                         f"{gpu_bytes / 2**30:.1f} GiB with {model} (largest size {sizes[-1]}): give "
                         "--tensor-parallel-size to try anyway")
    return Parallelism(fitting[0], gpus // fitting[0])
