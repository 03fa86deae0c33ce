"""The checkpoint layout of a run, which folder a resume loads, and the disk the checkpoints need.

    <trainer.default_local_dir>/
        latest_checkpointed_iteration.txt            veRL's tracker: the step of the latest complete checkpoint
        global_step_<N>/
            relift_state.json                         ReLIFT's buffer, counters, best score (relift.state)
            relift_account.json                       the SFT-only baseline's compute totals (relift.sft_baseline)
            data.pt                                   the dataloader's position
            actor/                                    veRL's FSDPCheckpointManager, per rank r of W:
                model_world_size_<W>_rank_<r>.pt        "model": the rank's shard of the weights
                optim_world_size_<W>_rank_<r>.pt        "optimizer": its shard of the RL AdamW's two moments
                extra_state_world_size_<W>_rank_<r>.pt  "extra": LR scheduler and RNG (kilobytes)
                relift_sft_optimizer_rank<r>.pt         the supervised AdamW's shard (relift.workers, relift.enable)
                fsdp_config.json                        {"FSDP_version": ..., "world_size": W}
                huggingface/                            config and tokenizer; the whole model with "hf_model"
        best -> best_step_<N>/                        the best model by validation, Hugging Face format (relift.best)
            relift_best.json                          its step, score and validation metrics
        summary.json                                  the run's compute totals, written at its end (relift.accounting)

Sizes (veRL 0.9.1, verl/utils/checkpoint/fsdp_checkpoint_manager.py): the actor trains in
`actor_rollout_ref.actor.fsdp_config.model_dtype` (fp32; FSDP2's mixed precision casts to bf16 only
for compute), every rank saves its shard of the weights and of AdamW's two moments in that dtype, and
"hf_model" and the best model are the gathered weights in that dtype too (measured: F32 safetensors).
The first part (layout, resume) needs neither veRL nor torch; `disk_plan` imports them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

from omegaconf import DictConfig

# The layout's names, each used by name from here only.
TRACKER_FILE = "latest_checkpointed_iteration.txt"  # veRL's
STATE_FILE = "relift_state.json"
ACCOUNT_FILE = "relift_account.json"
SFT_OPTIMIZER_FILE = "relift_sft_optimizer_rank{rank}.pt"
BEST_LINK = "best"
BEST_FOLDER = "best_step_{step}"
BEST_INFO_FILE = "relift_best.json"
SUMMARY_FILE = "summary.json"


def latest_step(checkpoint_dir: str) -> int | None:
    """The step of the checkpoint veRL marked as the latest (its tracker file), None before the first."""
    tracker = os.path.join(checkpoint_dir, TRACKER_FILE)
    if not os.path.exists(tracker):
        return None
    with open(tracker) as f:
        return int(f.read())


def resume_folder(config: DictConfig) -> str | None:
    """The `global_step_<N>` folder veRL's `_load_checkpoint` loads for this configuration, made absolute
    from the working directory as veRL does; None when the run starts afresh."""
    trainer = config.trainer
    if trainer.resume_mode == "disable":
        return None
    if trainer.resume_mode == "resume_path":
        return os.path.abspath(trainer.resume_from_path)
    step = latest_step(trainer.default_local_dir)
    return None if step is None else os.path.abspath(os.path.join(trainer.default_local_dir, f"global_step_{step}"))


def saved_world_size(folder: str) -> int | None:
    """W, the ranks that wrote `folder`'s actor shards (veRL loads only `..._world_size_<W>_rank_<r>.pt` of its
    own W); None when the folder has no actor/fsdp_config.json."""
    path = os.path.join(folder, "actor", "fsdp_config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return int(json.load(f)["world_size"])


def resume_state_missing(path: str) -> str:
    return (
        f"{path} is missing: this checkpoint has no ReLIFT buffer (written by a run with "
        "relift.enable=false, or copied without it); set "
        "relift.resume_without_state=true to resume from it with an empty buffer, or "
        "trainer.resume_mode=disable to start afresh"
    )


def parameter_count(model_path: str, trust_remote_code: bool = False) -> int:
    """Parameters of the model in `model_path` (a folder or hub name with a config.json), built from its
    config on the meta device with the auto class veRL's engine uses: no weight is read, tied embeddings
    count once. Qwen2.5-Math-7B: 7,615,616,512; Qwen2.5-Math-1.5B: 1,543,714,304."""
    import torch
    from transformers import AutoConfig
    from verl.utils.model import get_hf_auto_model_class

    hf_config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = get_hf_auto_model_class(hf_config).from_config(hf_config, trust_remote_code=trust_remote_code)
    return sum(parameter.numel() for parameter in model.parameters())


def checkpoints_at_peak(save_freq: int, keep: int | None, steps: int) -> int:
    """Checkpoints on disk at once. veRL saves every `save_freq` steps and at the last step; with
    `max_actor_ckpt_to_keep` k >= 2 it deletes down to k - 1 before a save, with k = 1 only after the new
    one is written (checkpoint_manager.py, ensure_checkpoint_capacity / register_checkpoint), so 1 keeps
    2 at the peak; null or <= 0 keeps all. Checkpoints written before a resume are not in veRL's list and
    are never deleted: they already take disk space, which the free space reflects."""
    if save_freq <= 0:
        return 0
    saves = -(-steps // save_freq)
    return saves if not keep or keep <= 0 else min(saves, max(keep, 2))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def nearest_existing(folder: str) -> str:
    """`folder`, or its nearest parent that exists (where its files will land)."""
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


@dataclasses.dataclass(frozen=True)
class DiskPlan:
    """What one checkpoint holds (bytes summed over ranks) and what the run needs on disk at most. Files of
    kilobytes to megabytes (extra state, data.pt, tokenizer, relift_state.json) are not counted."""

    folder: str
    save_freq: int
    keep: int | None
    world_size: int
    parameters: int
    dtype: str
    parts: dict[str, int]  # "weights", "RL optimizer", "supervised optimizer", "HF model" -> bytes
    checkpoints: int  # on disk at once, at the peak
    best_model: int  # bytes of one best model, 0 without relift.save_best and validation
    best_copies: int  # a new best is written before the previous one is removed; 1 next to an existing best

    @property
    def checkpoint(self) -> int:
        return sum(self.parts.values())

    @property
    def needed(self) -> int:
        return self.checkpoints * self.checkpoint + self.best_copies * self.best_model

    @property
    def contents(self) -> str:
        best = f" + the best model {self.best_copies} x {_size(self.best_model)}" if self.best_copies else ""
        return f"{self.checkpoints} checkpoint(s) of {_size(self.checkpoint)}{best}"

    def lines(self, free: int) -> list[str]:
        sharded = self.checkpoint - self.parts.get("HF model", 0)
        parts = ", ".join(f"{name} {_size(size)}" for name, size in self.parts.items())
        kept = "all kept" if not self.keep or self.keep <= 0 else f"the {self.keep} newest kept"
        every = (f"every {self.save_freq} steps and the last, {kept}" if self.save_freq > 0
                 else "none: a crash loses the run")
        return [
            f"checkpoints       {every} (trainer.save_freq={self.save_freq}, "
            f"trainer.max_actor_ckpt_to_keep={'null' if self.keep is None else self.keep}) in {self.folder}",
            f"one checkpoint    {_size(self.checkpoint)}: {parts} ({self.parameters:,} parameters, "
            f"{self.dtype}); {_size(sharded / self.world_size)} per rank x {self.world_size}"
            + (" + the HF model on rank 0" if "HF model" in self.parts else ""),
            f"disk              {_size(self.needed)} at most ({self.contents}), "
            f"{_size(free)} free in {nearest_existing(self.folder)}",
        ]


def disk_plan(config: DictConfig, steps: int) -> DiskPlan:
    """The checkpoint sizes of this configuration over `steps` training steps, from the model's config
    and the world size. AdamW (veRL's and relift's) keeps two moments per parameter in its dtype."""
    from verl.utils.torch_dtypes import PrecisionType

    trainer, actor = config.trainer, config.actor_rollout_ref.actor
    parameters = parameter_count(config.actor_rollout_ref.model.path,
                                 config.actor_rollout_ref.model.get("trust_remote_code", False))
    dtype = PrecisionType.to_dtype(actor.fsdp_config.model_dtype or "fp32")
    weights = parameters * dtype.itemsize
    save = actor.checkpoint.save_contents
    parts = {"weights": weights if "model" in save else 0, "RL optimizer": 2 * weights if "optimizer" in save else 0,
             "supervised optimizer": 2 * weights if config.relift.enable else 0,
             "HF model": weights if "hf_model" in save else 0}
    validates = trainer.test_freq > 0 or trainer.val_before_train
    best_copies = 0
    if config.relift.save_best and validates:
        best_copies = 1 if os.path.lexists(os.path.join(trainer.default_local_dir, BEST_LINK)) else 2
    return DiskPlan(
        folder=trainer.default_local_dir, save_freq=trainer.save_freq, keep=trainer.get("max_actor_ckpt_to_keep"),
        world_size=trainer.n_gpus_per_node * trainer.nnodes, parameters=parameters,
        dtype=str(dtype).removeprefix("torch."), parts={name: size for name, size in parts.items() if size},
        checkpoints=checkpoints_at_peak(trainer.save_freq, trainer.get("max_actor_ckpt_to_keep"), steps),
        best_model=weights, best_copies=best_copies,
    )


def free_bytes(folder: str) -> int:
    """Free bytes (for an unprivileged user) on the filesystem `folder` will be created on."""
    return shutil.disk_usage(nearest_existing(folder)).free


def disk_problem(plan: DiskPlan, free: int) -> str | None:
    """One line when `free` bytes cannot hold what `plan` keeps at its peak."""
    if plan.needed <= free:
        return None
    return (
        f"trainer.default_local_dir={plan.folder} needs {plan.needed:,} bytes ({_size(plan.needed)}: "
        f"{plan.contents}) but "
        f"{nearest_existing(plan.folder)} has {free:,} bytes ({_size(free)}) free: set "
        "trainer.default_local_dir to a disk with room (or write less: trainer.save_freq=-1 keeps no checkpoint, "
        "relift.save_best=false no best model)"
    )
