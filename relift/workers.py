"""The actor worker with ReLIFT's supervised update: veRL's `ActorRolloutRefWorker` plus one method.

`sft_update` runs veRL's own mini-batch loop (`TrainingWorker.train_mini_batch`: same forward pass,
micro-batching, FSDP gradient reduction and clipping) with three things swapped in for its duration:
the loss (token-mean NLL on demonstration tokens, optionally weighted per token: relift.sft), the
optimizer (a second AdamW over the same parameters, with its own moments, as in the paper) and a
scheduler that keeps the learning rate the trainer sends with each update (its warm-up). The second
optimizer's state is saved and loaded with the actor's checkpoint. `save_best` writes the best model by
validation score (relift.best). With `log_update_size`, RL and supervised updates report the relative
size of the weight change they made, ||delta theta|| / ||theta||.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial

import torch
from verl.single_controller.base.decorator import Dispatch, make_nd_compute_dataproto_dispatch_fn, register
from verl.utils import tensordict_utils as tu
from verl.utils.device import get_device_id, get_device_name
from verl.utils.metric import AggregationType, Metric
from verl.workers.engine_workers import ActorRolloutRefWorker
from verl.workers.utils.padding import no_padding_2_padding

from relift import best, cpu, sft
from relift.checkpoints import BEST_FOLDER, SFT_OPTIMIZER_FILE
from relift.offload import move_optimizer_state


def sft_loss_fn(model_output, data, dp_group=None, *, entropy_coeff: float, weighting: str, trust_region_alpha: float):
    """veRL loss-function signature around `relift.sft.sft_loss` (tensors of this rank's micro-batch)."""
    log_probs = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)
    response_mask = data.select("response_mask").to_padded_tensor()["response_mask"]
    loss, nll = sft.sft_loss(
        log_probs,
        entropy,
        response_mask,
        global_num_tokens=data["batch_num_tokens"],
        dp_size=data["dp_size"],
        entropy_coeff=entropy_coeff,
        weighting=weighting,
        trust_region_alpha=trust_region_alpha,
        sequence_weights=data["sft_weights"],
    )
    # veRL averages a metric over DP ranks and sums it over micro-batches; each rank's share of the
    # global token mean is scaled by dp_size like the loss, so that the average is the global NLL.
    return loss, {"relift/sft_nll": Metric(value=nll * data["dp_size"], aggregation=AggregationType.SUM)}


def _local(param: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a parameter (FSDP2 holds DTensors, FSDP1 flat local tensors)."""
    return param.to_local() if hasattr(param, "to_local") else param


@contextmanager
def _update_size(module: torch.nn.Module, metrics: dict, key: str, enabled: bool):
    """Put ||theta_after - theta_before|| / ||theta_before|| over all of the module's parameters into
    metrics[key] (a one-element list, as veRL's metrics are). Holds a copy of this rank's parameter shards
    during the update."""
    if not enabled:
        yield
        return
    before = [_local(p).detach().clone() for p in module.parameters()]
    yield
    sums = torch.zeros(2, dtype=torch.float64, device=before[0].device)
    with torch.no_grad():
        for param, old in zip(module.parameters(), before, strict=True):
            sums[0] += (_local(param).double() - old.double()).pow(2).sum()
            sums[1] += old.double().pow(2).sum()
    torch.distributed.all_reduce(sums)  # shards are disjoint; replicas count in both sums alike
    metrics[key] = [float((sums[0] / sums[1]).sqrt())]


@contextmanager
def _swapped(obj, **attributes):
    saved = {name: getattr(obj, name) for name in attributes}
    for name, value in attributes.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


@dataclasses.dataclass
class SupervisedUpdate:
    """What a supervised update swaps into veRL's engine and actor for its duration."""

    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    optimizer_config: object
    loss_fn: Callable
    offload: bool


class ReLIFTActorRolloutRefWorker(ActorRolloutRefWorker):
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        if get_device_name() == "cpu":
            # Ray gives each worker OMP_NUM_THREADS=1; rollout, log-prob and update phases alternate,
            # so the training process may use every core while it computes.
            torch.set_num_threads(os.cpu_count() or 1)
            cpu.init_gloo()
        super().init_model()
        self._sft = None
        self._log_update_size = False

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def log_update_size(self, enabled: bool):
        self._log_update_size = enabled

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    def update_actor(self, data):
        """veRL's RL update, measured when `log_update_size` is on (actor/update_size)."""
        metrics = {}
        with _update_size(self.actor.engine.module, metrics, "update_size", self._log_update_size):
            output = super().update_actor(data)
        if output is not None:
            tu.get(output, "metrics").update(metrics)
        return output

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_sft(self, betas: list[float], weight_decay: float, grad_clip: float, entropy_coeff: float,
                 offload: bool, token_weighting: str, trust_region_alpha: float):
        """Create the supervised optimizer over the actor's (sharded) parameters. With `offload` its state
        is on the device only during a supervised update (relift.offload). Each update brings its lr."""
        engine = self.actor.engine
        optimizer = torch.optim.AdamW(engine.module.parameters(), betas=tuple(betas), weight_decay=weight_decay)
        self._sft = SupervisedUpdate(
            optimizer=optimizer,
            # Keeps the lr set before each update: veRL's loop steps the engine's scheduler after it.
            lr_scheduler=torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0),
            optimizer_config=dataclasses.replace(engine.optimizer_config, clip_grad=grad_clip),
            loss_fn=partial(sft_loss_fn, entropy_coeff=entropy_coeff, weighting=token_weighting,
                            trust_region_alpha=trust_region_alpha),
            offload=offload,
        )

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    def sft_update(self, data):
        """One supervised optimizer step on `data` (veRL's no-padding layout, with the non-tensor `lr`)."""
        assert self._sft is not None, "call init_sft before sft_update"
        engine, sft = self.actor.engine, self._sft
        for group in sft.optimizer.param_groups:
            group["lr"] = tu.pop(data, key="lr")
        if sft.offload:
            move_optimizer_state(sft.optimizer, get_device_id())
        metrics = {}
        with (
            _swapped(engine, optimizer=sft.optimizer, lr_scheduler=sft.lr_scheduler,
                     optimizer_config=sft.optimizer_config),
            _swapped(self.actor, loss_fn=sft.loss_fn),
            _update_size(engine.module, metrics, "update_size", self._log_update_size),
        ):
            output = self.actor.train_mini_batch(data=data)
        if sft.offload:
            move_optimizer_state(sft.optimizer, "cpu")
        if output is not None:
            tu.get(output, "metrics").update(metrics)
        return output.cpu() if output is not None else None

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_best(self, run_dir: str, step: int, info: dict):
        """Write the actor's weights as a Hugging Face model and make it `run_dir/best` (relift.best).
        veRL's own checkpoint writer does it, asked for `hf_model` only and kept out of its rotation of
        checkpoints to keep."""
        manager = self.actor.engine.checkpoint_manager
        staging = os.path.join(run_dir, f".{BEST_FOLDER.format(step=step)}.tmp")
        with _swapped(manager, checkpoint_save_contents=["hf_model"], previous_saved_paths=[],
                      previous_global_step=manager.previous_global_step):
            self.actor.engine.save_checkpoint(staging, global_step=step, max_ckpt_to_keep=None)
        if torch.distributed.get_rank() == 0:
            best.publish(os.path.join(staging, "huggingface"), run_dir, step, info)
            shutil.rmtree(staging)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        super().save_checkpoint(local_path, hdfs_path, global_step, max_ckpt_to_keep)
        if self._sft is not None:
            os.makedirs(local_path, exist_ok=True)
            path = os.path.join(local_path, SFT_OPTIMIZER_FILE.format(rank=torch.distributed.get_rank()))
            torch.save(self._sft.optimizer.state_dict(), path + ".tmp")
            os.replace(path + ".tmp", path)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, local_path, hdfs_path=None, del_local_after_load=False):
        path = os.path.join(local_path, SFT_OPTIMIZER_FILE.format(rank=torch.distributed.get_rank()))
        # Read before the parent call, which may delete the local checkpoint after loading.
        state = torch.load(path, weights_only=False) if self._sft is not None and os.path.exists(path) else None
        super().load_checkpoint(local_path, hdfs_path, del_local_after_load)
        if state is not None:
            # load_state_dict puts the state on the parameters' device.
            self._sft.optimizer.load_state_dict(state)
            if self._sft.offload:
                move_optimizer_state(self._sft.optimizer, "cpu")
