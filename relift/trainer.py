"""`ReLIFTTrainer`: veRL's `RayPPOTrainer` (GRPO) with ReLIFT's interleaved fine-tuning.

Only a few hooks of `RayPPOTrainer` are overridden; `fit()` is veRL's own (wrapped to write the run's
compute summary at its end):

- `_get_gen_batch`: keep each row's demonstration (`target`) in the training batch: veRL moves every
  non-reward field into the generation batch, and the rollout output does not carry it back;
- `init_workers`: after veRL builds the workers, create the supervised optimizer on each actor rank;
- `_update_actor`: stop if grading failed for every answer of the step that needed a grader, log the
  grader's health; after veRL's RL update of the step, ReLIFT's step (`relift.interleave.Interleaver`:
  buffer, replay pools, guard, supervised updates) on the step's responses, with `_sft_update` running each
  supervised update on the actor workers;
- `_validate`: after veRL's validation, keep the model in Hugging Face format when its score is the best
  so far (`relift.best`);
- `_save_checkpoint` / `_load_checkpoint`: the run's state (`relift.state.RunState`: buffer, replay
  pools, guard, counters, pending teacher questions, compute totals) travels with the checkpoint; the
  second optimizer's state is saved by the workers (`relift.workers`).

With `relift.enable=false` nothing of the above runs but the grading check and the accounting, and the
trainer is exactly veRL's GRPO.
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding

from relift import best
from relift.accounting import Account
from relift.checkpoints import (
    BEST_LINK,
    STATE_FILE,
    SUMMARY_FILE,
    latest_step,
    parameter_count,
    resume_folder,
    resume_state_missing,
)
from relift.checks import config_problems, supervised_settings
from relift.data import write_text_atomic
from relift.interleave import Interleaver, SupervisedBatch, progress_line, responses_of
from relift.reward import grading_health, grading_stop
from relift.state import RunState
from relift.teacher import Teacher, TeacherQueue, config_from


class ReLIFTTrainer(RayPPOTrainer):
    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            # relift subclasses the v0 trainer on purpose (docs/design.md: the V1 port waits for the veRL upgrade),
            # and veRL's dataloader calls a torchdata function that torchdata deprecates.
            warnings.filterwarnings("ignore", message=".*RayPPOTrainer' is deprecated", category=FutureWarning)
            warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
            super().__init__(*args, **kwargs)
        self.relift = self.config.relift
        teacher = None
        if self.relift.enable and self.relift.teacher.enable:
            config = config_from(self.relift.teacher)
            config.max_target_len = self.relift.max_target_len
            teacher = TeacherQueue(Teacher(config, self._count_tokens))
        world = self.config.trainer.n_gpus_per_node * self.config.trainer.nnodes
        model = self.config.actor_rollout_ref.model
        account = Account(arm="relift" if self.relift.enable else "rl", experiment=self.config.trainer.experiment_name,
                          device=self.config.trainer.device, devices=world,
                          parameters=parameter_count(model.path, model.get("trust_remote_code", False)))
        self.state = RunState(self.relift, account, teacher)
        self.interleaver = None
        if self.relift.enable:
            self.interleaver = Interleaver(supervised_settings(self.config), self.state, self.tokenizer, teacher,
                                           demos_available=len(self.train_dataset))
        self._started = time.monotonic()  # this session's start; a resume adds the checkpoint's wall time
        self._wall_before = 0.0
        # relift.main checks before Ray starts; a trainer built another way checks here.
        problems = config_problems(self.config)
        if problems:
            raise ValueError("; ".join(problems))

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def init_workers(self):
        super().init_workers()
        if self.relift.log_update_size:
            self.actor_rollout_wg.log_update_size(True)
        if self.relift.enable:
            optim = self.relift.optim
            self.actor_rollout_wg.init_sft(
                betas=list(optim.betas),
                weight_decay=optim.weight_decay,
                grad_clip=optim.grad_clip,
                entropy_coeff=self.relift.entropy_coeff,
                offload=self.relift.offload_sft_optimizer,
                token_weighting=self.relift.sft_loss.weighting,
                trust_region_alpha=self.relift.sft_loss.trust_region_alpha,
            )

    def _get_gen_batch(self, batch: DataProto) -> DataProto:
        gen_batch = super()._get_gen_batch(batch)
        if "target" in gen_batch.non_tensor_batch:
            batch.non_tensor_batch["target"] = gen_batch.non_tensor_batch.pop("target")
        if self.state.teacher is not None:  # the question's messages, for the teacher; the rollout keeps its own
            batch.non_tensor_batch["relift_question"] = gen_batch.non_tensor_batch["raw_prompt"].copy()
        return gen_batch

    def fit(self) -> list[str]:
        """veRL's fit(), then the run's compute summary (relift.accounting). Returns the closing lines for
        the driver to print (relift.task_runner): Ray's log streaming may drop a run's last lines."""
        super().fit()
        self._update_account(steps=self.global_steps - 1)  # veRL counts one past the last step
        account = self.state.account.summary()
        write_text_atomic(os.path.join(self.config.trainer.default_local_dir, SUMMARY_FILE),
                          json.dumps(account, indent=2))
        lines = self.state.account.lines()
        if self.relift.save_best and self.state.best_score is not None:
            run_dir = os.path.abspath(self.config.trainer.default_local_dir)
            lines.append(f"[relift] best validation score {self.state.best_score:.4f}: {run_dir}/{BEST_LINK}")
        return lines

    def _update_account(self, steps: int) -> None:
        self.state.account.steps = steps
        self.state.account.wall_s = self._wall_before + time.monotonic() - self._started
        self.state.account.demos_available = len(self.train_dataset)
        self.state.account.demos_used = len(self.state.demos_used)

    def _update_actor(self, batch: DataProto) -> DataProto:
        health = grading_health(batch.non_tensor_batch)
        stop = grading_stop(health)
        if stop:
            raise RuntimeError(f"[relift] step {self.global_steps}: {stop}")
        output = super()._update_actor(batch)
        account, actor = self.state.account, self.config.actor_rollout_ref.actor
        tokens = int(batch.batch["response_mask"].sum())
        prompt_tokens = int(batch.batch["attention_mask"][:, : -batch.batch["responses"].shape[-1]].sum())
        account.tokens_generated += tokens
        account.rl_tokens_trained += tokens  # GRPO trains on every sampled response
        account.tokens_prefilled += prompt_tokens
        account.tokens_scored += prompt_tokens + tokens
        account.tokens_in_rl_updates += (prompt_tokens + tokens) * actor.ppo_epochs
        account.rl_updates += actor.ppo_epochs * (self.config.data.train_batch_size // actor.ppo_mini_batch_size)
        output.meta_info["metrics"].update(health)
        if self.interleaver is not None:
            responses = responses_of(batch.non_tensor_batch, batch.batch, with_questions=self.state.teacher is not None)
            metrics = self.interleaver.step(self.global_steps, responses, self._sft_update)
            output.meta_info["metrics"].update(metrics)
            reward = batch.batch["token_level_scores"].sum(-1).mean().item()
            print(progress_line(self.global_steps, reward, metrics), flush=True)
        return output

    def _sft_update(self, batch: SupervisedBatch) -> dict[str, float]:
        """One supervised update on the actor workers (relift.workers.sft_update), in veRL's no-padding layout."""
        plan = batch.plan
        data = DataProto.from_dict(tensors=batch.tensors, meta_info={"temperature": 1.0})
        data_td = left_right_2_no_padding(data.to_tensordict())
        tu.assign_non_tensor(
            data_td,
            calculate_entropy=self.relift.entropy_coeff != 0.0,
            global_batch_size=plan.size,
            mini_batch_size=plan.size,
            epochs=1,
            seed=self.config.actor_rollout_ref.actor.data_loader_seed,
            dataloader_kwargs={"shuffle": False},
            compute_loss=True,
            lr=plan.lr,
        )
        if plan.micro_batch is not None:  # else the actor's micro-batches by tokens
            tu.assign_non_tensor(data_td, micro_batch_size_per_gpu=plan.micro_batch)
        metrics = tu.get(self.actor_rollout_wg.sft_update(data_td), "metrics")
        measured = {
            "nll": float(np.mean(metrics["relift/sft_nll"])),
            "grad_norm": float(np.mean(metrics["grad_norm"])),
            # the actor process's peak accelerator memory so far, as veRL's actor/perf/* after the RL update
            "max_memory_gb": float(np.max(metrics["perf/max_memory_allocated_gb"])),
        }
        if "update_size" in metrics:
            measured["update_size"] = float(np.mean(metrics["update_size"]))
        return measured

    def _validate(self, *args, **kwargs):
        metrics = super()._validate(*args, **kwargs)
        score = best.validation_score(metrics)
        if self.relift.save_best and best.improves(score, self.state.best_score):
            self.state.best_score = score
            run_dir = os.path.abspath(self.config.trainer.default_local_dir)
            info = {"step": self.global_steps, "score": score,
                    "val_core": {key: float(value) for key, value in metrics.items() if key.startswith("val-core/")}}
            self.actor_rollout_wg.save_best(run_dir, self.global_steps, info)
            print(f"[relift] best validation score so far, {score:.4f} at step {self.global_steps}: "
                  f"{run_dir}/{BEST_LINK}", flush=True)
        return metrics

    # ---- checkpointing ----------------------------------------------------------------------------

    def _state_path(self, global_step_folder: str) -> str:
        return os.path.join(global_step_folder, STATE_FILE)

    def _save_checkpoint(self):
        # Before veRL's save, which marks the folder as the latest last: a run killed in between resumes
        # from the previous checkpoint, whose state is complete.
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        self._update_account(steps=self.global_steps)
        try:
            write_text_atomic(self._state_path(folder), json.dumps(self.state.state_dict()))
            super()._save_checkpoint()
        except Exception as error:
            cause = getattr(error, "cause", error)  # a worker's error arrives wrapped in Ray's RayTaskError
            if not isinstance(cause, OSError):
                raise
            latest = latest_step(self.config.trainer.default_local_dir)
            kept = (f"global_step_{latest} is still the latest checkpoint and intact" if latest is not None
                    else "no checkpoint was written before")
            raise RuntimeError(
                f"[relift] saving the checkpoint of step {self.global_steps} to {folder} failed: {cause}; {kept} "
                "(veRL marks a checkpoint as the latest only once it is written)"
            ) from None

    def _load_checkpoint(self):
        result = super()._load_checkpoint()
        if self.global_steps == 0:
            return result
        path = self._state_path(resume_folder(self.config))
        if os.path.exists(path):
            with open(path) as f:
                self.state.load_state_dict(json.load(f))
            self._wall_before = self.state.account.wall_s
            print(f"[relift] resumed buffer of {len(self.state.buffer)} questions, replay pool of "
                  f"{len(self.state.replay)} responses and counters {self.state.counters}", flush=True)
            teacher = self.state.teacher
            if teacher is not None and teacher.pending:
                print(f"[relift] asked the teacher again for {len(teacher.pending)} pending questions", flush=True)
        elif self.relift.enable and not self.relift.resume_without_state:
            raise FileNotFoundError(resume_state_missing(path))  # relift.main checks this before Ray starts
        elif self.relift.enable:
            print(f"[relift] {path} not found: resuming with an empty buffer (relift.resume_without_state=true)",
                  flush=True)
        return result

