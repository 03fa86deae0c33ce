"""A CPU platform for veRL 0.9.1, registered in its `PlatformRegistry` under the name "cpu".

veRL reaches the accelerator through `get_platform().device_module` (empty_cache, synchronize, rng
state, memory stats, ...). On CPU those calls have a natural meaning or are no-ops; `CPUDeviceModule`
gives them one. Ray placement still asks for "GPU" bundles (veRL's resource pools hard-code them), so
the driver starts Ray with logical GPUs: one per training process (see `relift.main`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Optional

import psutil
import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from relift.cpu import vllm_cpu_env


class CPUDeviceModule(ModuleType):
    """Stand-in for `torch.cuda` on CPU: torch.cpu where it has the function, else the CPU meaning."""

    def __init__(self):
        super().__init__("relift_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return psutil.Process().memory_info().rss

    memory_reserved = memory_allocated
    max_memory_allocated = memory_allocated
    max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "cpu"


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    _device_module = CPUDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: a GPU host must keep veRL's CUDA platform. Selected by VERL_PLATFORM=cpu.
        return False

    def current_device(self) -> str:
        # veRL moves tensors with `.to(get_device_id())`; an integer would mean "accelerator 0".
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "RELIFT_VISIBLE_CPUS"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # veRL's ResourcePoolManager counts "GPU" bundles only; the driver starts Ray with logical GPUs.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        # CUDA IPC is CUDA's: the actor sends its weights to vLLM through shared memory buckets instead
        # (veRL's use_shm path of bucketed_weight_transfer.py; the same buckets and handshake otherwise).
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        # For the vLLM server and the engine processes it spawns.
        return vllm_cpu_env()

    def cudart(self) -> Any:
        return None

    def get_device_uuid(self, device_id):
        return f"cpu-{os.getpid()}-{device_id}"
