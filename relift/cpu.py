"""Running veRL on a machine without a GPU: the environment every process needs, a local Ray on the
loopback interface, and the gloo process group. Used by `relift.main` (the driver), `relift.workers`
(the actor processes) and `relift.sft_baseline` (veRL's SFT trainer under torchrun or alone).

The platform and rollout themselves are `relift.verl_ext`, which veRL imports in every process when
`VERL_USE_EXTERNAL_MODULES` names it. veRL resolves the platform when it is imported, so `use_cpu()`
comes before the first import of veRL.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

RAY_LOOPBACK_ADDRESS = "127.0.0.2"

CPU_ENV = {
    "VERL_PLATFORM": "cpu",
    "VERL_USE_EXTERNAL_MODULES": "relift.verl_ext",
    "TOKENIZERS_PARALLELISM": "false",
    # veRL's plugin auto-discovery and Ray's usage stats have nothing to do on an offline CPU box.
    "RAY_USAGE_STATS_ENABLED": "0",
}


# vLLM's CPU build keeps its KV cache in this many GiB of host memory (vLLM's default, 4, is more than a tiny
# model on 2 cores needs); VLLM_CPU_KVCACHE_SPACE, when set, wins.
VLLM_KV_CACHE_GIB = 1


def vllm_cpu_env() -> dict[str, str]:
    """The environment of a process that runs vLLM's CPU build: its CPU platform and kernels (without it vLLM
    takes the CPU for another device and dies on kernels for a newer instruction set), and its KV cache."""
    return {"VLLM_TARGET_DEVICE": "cpu",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(VLLM_KV_CACHE_GIB))}


def use_cpu() -> None:
    """Select relift's CPU platform (relift.verl_ext) for this process and the processes it starts."""
    os.environ.update(CPU_ENV)


def init_gloo() -> None:
    """The default process group on gloo, its rank and world size from the environment (torchrun, veRL's
    workers). veRL builds the backend string "cpu:gloo,<device>:<backend>", which torch rejects when the
    device is cpu itself; veRL's initializer is a no-op once a group exists."""
    import torch

    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="gloo")


def start_ray(config: DictConfig) -> None:
    """A local Ray on 127.0.0.2 with one logical GPU per training process, or the cluster at RAY_ADDRESS
    (examples/ray_start_head.sh) as veRL's run_ppo attaches on GPU; veRL's runtime env with the user's
    ray_kwargs.ray_init.runtime_env on top, and the CPU environment for every worker."""
    import ray

    use_cpu()
    # Hydra's search path already imported veRL in this process, before the variables above were set.
    import relift.verl_ext  # noqa: F401

    if ray.is_initialized():
        return
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    # On a cluster, the runtime env is how environment variables reach the workers of other nodes.
    user_env = config.ray_kwargs.get("ray_init", {}).get("runtime_env", {})
    runtime_env = OmegaConf.to_container(OmegaConf.merge(get_ppo_ray_runtime_env(config), user_env))
    runtime_env.setdefault("env_vars", {}).update(CPU_ENV)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(runtime_env=runtime_env, logging_level="WARNING")
        return
    num_gpus = config.trainer.n_gpus_per_node * config.trainer.nnodes
    ray.init(
        # A new local instance: never one that `ray start` on this machine recorded (RAY_ADDRESS attaches).
        address="local",
        # Loopback only. Ray swaps 127.0.0.1 itself for the host's routable address
        # (ray._private.services.resolve_ip_for_localhost); another address of 127.0.0.0/8 stays on `lo`.
        _node_ip_address=RAY_LOOPBACK_ADDRESS,
        # Logical slots, not cores: veRL reserves 3 CPUs per GPU bundle, plus its task runner, agent-loop
        # and reward workers. The phases of a step run one after another, so they do not compete.
        num_cpus=4 * num_gpus + 8,
        num_gpus=num_gpus,
        include_dashboard=False,
        runtime_env=runtime_env,
        logging_level="WARNING",
    )
