"""veRL's vLLM rollout on CPU: its replica, server and worker extension, with the one thing a CPU does
differently, the weight sync.

On a GPU, vLLM keeps each linear layer's weight as loaded, so veRL's sync (`vLLMColocateWorkerExtension.
update_weights_from_ipc`) loads every bucket the actor sends with `model.load_weights`. On CPU, once the
model is loaded, vLLM packs each linear weight for its CPU kernels (oneDNN or SGL) and drops the original
parameter (vllm/model_executor/layers/utils.py, `dispatch_cpu_unquantized_gemm`), so `load_weights` has
nothing to load into ("'Parameter' object has no attribute 'weight_loader'"). `CPUWorkerExtension` runs
the same sync inside vLLM's own reload lifecycle, the one `GPUModelRunner.reload_weights` uses
(vllm/model_executor/model_loader/reload): the original parameters come back for the update, each layer
is packed again once all its weights arrived, and the rest is veRL's: its bucket receiver over shared
memory (`use_shm`, as the CPU platform has no CUDA IPC) and its per-bucket loading.

`relift.verl_ext` makes `actor_rollout_ref.rollout.name=vllm` resolve to `CPUvLLMReplica` in the processes
of a `device=cpu` run, importing this module (and vLLM) only when a replica is built; GPU runs never do.
"""

from __future__ import annotations

import logging

import torch
from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver
from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica


class _BufferOnlyLayers(logging.Filter):
    """Drops vLLM's "<layer>: Failed to load weights" for layers that hold buffers only (the rotary embedding's
    cos/sin cache): veRL's sync sends parameters, so nothing arrives for them, and vLLM puts their own buffers
    back. A layer with parameters that received none still warns."""

    def __init__(self, names: set[str]):
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "%s: Failed to load weights" and record.args and record.args[0] in self.names)


class CPUWorkerExtension(vLLMColocateWorkerExtension):
    """veRL's worker extension for vLLM's CPU workers: the weight sync inside vLLM's reload lifecycle."""

    def update_weights_from_ipc(self, peft_config: dict | None = None, base_sync_done: bool = False,
                                use_shm: bool = False) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

        if peft_config:
            raise NotImplementedError("relift's CPU path syncs full weights only: LoRA rollouts need a GPU")
        model, model_config = self.model_runner.model, self.model_runner.model_config
        reload_log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
        if not any(isinstance(f, _BufferOnlyLayers) for f in reload_log.filters):
            reload_log.addFilter(_BufferOnlyLayers({
                type(layer).__name__ for layer in model.modules()
                if next(layer.parameters(recurse=False), None) is None and next(layer.buffers(recurse=False), None)
                is not None}))
        receiver = BucketedWeightReceiver(zmq_handle=self._get_zmq_handle(), device=torch.device("cpu"),
                                          use_shm=use_shm)

        def load(weights: list[tuple[str, torch.Tensor]], is_last: bool) -> None:
            # A layer is loaded when all its weights have arrived, maybe a bucket later: the receiver reuses its
            # buffer for the next bucket, so the layer keeps copies.
            self._update_weights([(name, tensor.clone()) for name, tensor in weights], peft_config=None,
                                 base_sync_done=base_sync_done)

        initialize_layerwise_reload(model)
        receiver.receive_weights(on_bucket_received=load)
        finalize_layerwise_reload(model, model_config)


class CPUvLLMHttpServer(vLLMHttpServer):
    def _get_worker_extension_cls(self) -> str:
        return f"{CPUWorkerExtension.__module__}.{CPUWorkerExtension.__qualname__}"


class CPUvLLMReplica(vLLMReplica):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import ray

        self.server_class = ray.remote(CPUvLLMHttpServer)
