"""`ReLIFTTrainer`: veRL's `RayPPOTrainer` (GRPO) with ReLIFT's interleaved fine-tuning.

Only a few hooks of `RayPPOTrainer` are overridden; `fit()` is veRL's own (wrapped to write the run's
compute summary at its end):

- `_get_gen_batch`: keep each row's demonstration (`target`) in the training batch: veRL moves every
  non-reward field into the generation batch, and the rollout output does not carry it back;
- `init_workers`: after veRL builds the workers, create the supervised optimizer on each actor rank;
- `_update_actor`: stop if grading failed for every answer of the step that needed a grader, log the
  grader's health; after veRL's RL update of the step, find the questions none of whose n responses was
  correct, buffer those that have a demonstration, keep correct responses for replay, and while the buffer
  holds `sft_trigger_size` questions (and the runaway guard allows) take the newest ones for one
  supervised update (at most `max_sft_updates_per_step`), with relift.replay's shares of replayed
  responses and the supervised lr's warm-up;
- `_validate`: after veRL's validation, keep the model in Hugging Face format when its score is the best
  so far (`relift.best`);
- `_save_checkpoint` / `_load_checkpoint`: the run's state (`relift.state.RunState`: buffer, replay
  pools, guard, counters, pending teacher questions, compute totals) travels with the checkpoint; the
  second optimizer's state is saved by the workers (`relift.workers`).

With `relift.teacher.enable`, hardest questions without a demonstration are sent to the teacher in the
background (`relift.teacher.TeacherQueue`); verified replies enter the buffer at the first step after
they arrive.

With `relift.enable=false` nothing of the above runs but the grading check and the accounting, and the
trainer is exactly veRL's GRPO.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
import warnings

import numpy as np
import torch
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding

from relift import best
from relift.accounting import SUMMARY_FILE, Account
from relift.buffer import CorrectResponse, HardQuestion
from relift.checkpoints import STATE_FILE, latest_step, resume_folder, resume_state_missing
from relift.checks import config_problems, replayed_per_update, supervised_split
from relift.data import write_text_atomic
from relift.hardest import group_outcomes
from relift.layout import strip_think_prefix
from relift.reward import grading_health
from relift.sft import anchor_weight, build_sft_batch, demonstration_text, micro_batching, replay_draws, warmup_fraction
from relift.state import RunState
from relift.teacher import Teacher, TeacherQueue, TeacherUnavailable, config_from


def prompt_hash(prompt_ids: list[int]) -> str:
    """A question's id in the buffer and the replay pools: the hash of its prompt tokens as the rollout saw them."""
    return hashlib.sha1(np.asarray(prompt_ids, dtype=np.int64).tobytes()).hexdigest()


class ReLIFTTrainer(RayPPOTrainer):
    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            # relift subclasses the v0 trainer on purpose (README: the V1 port waits for the veRL upgrade),
            # and veRL's dataloader calls a torchdata function that torchdata deprecates.
            warnings.filterwarnings("ignore", message=".*RayPPOTrainer' is deprecated", category=FutureWarning)
            warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
            super().__init__(*args, **kwargs)
        self.relift = self.config.relift
        self.replayed_per_update = replayed_per_update(self.config)
        self.supervised_split = supervised_split(self.config)
        self.teacher: TeacherQueue | None = None
        if self.relift.enable and self.relift.teacher.enable:
            config = config_from(self.relift.teacher)
            config.max_target_len = self.relift.max_target_len
            self.teacher = TeacherQueue(Teacher(config, self._count_tokens))
        world = self.config.trainer.n_gpus_per_node * self.config.trainer.nnodes
        account = Account(arm="relift" if self.relift.enable else "rl", experiment=self.config.trainer.experiment_name,
                          device=self.config.trainer.device, devices=world)
        self.state = RunState(self.relift, account, self.teacher)
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
        if self.teacher is not None:  # the question's messages, for the teacher; the rollout keeps its own
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
            lines.append(f"[relift] best validation score {self.state.best_score:.4f}: {run_dir}/best")
        return lines

    def _update_account(self, steps: int) -> None:
        self.state.account.steps = steps
        self.state.account.wall_s = self._wall_before + time.monotonic() - self._started
        self.state.account.demos_available = len(self.train_dataset)
        self.state.account.demos_used = len(self.state.demos_used)

    def _update_actor(self, batch: DataProto) -> DataProto:
        health = grading_health(batch.non_tensor_batch)
        if health.get("grader/failures", 0) == health.get("grader/answers", 0) > 0:
            raise RuntimeError(
                f"[relift] step {self.global_steps}: grading failed for all {health['grader/answers']} answers sent "
                "to the grader processes (the reward workers' log above has the first error): stopping instead of "
                "training on rewards of 0"
            )
        output = super()._update_actor(batch)
        tokens = int(batch.batch["response_mask"].sum())
        self.state.account.tokens_generated += tokens  # GRPO trains on every sampled response
        self.state.account.rl_tokens_trained += tokens
        output.meta_info["metrics"].update(health)
        if self.relift.enable:
            output.meta_info["metrics"].update(self._relift_step(batch))
        return output

    def _relift_step(self, batch: DataProto) -> dict:
        """Buffer this step's hardest questions, run the supervised updates that are due, report the step."""
        metrics = self._collect(batch)
        metrics.update(self._run_due_updates(metrics["relift/solve_none_frac"]))
        metrics.update(self._state_metrics())
        self._print_progress(batch, metrics)
        return metrics

    def _collect(self, batch: DataProto) -> dict:
        """Push this step's hardest questions with a demonstration into the buffer (and send those without one
        to the teacher), keep correct responses for replay, and take in the teacher's replies."""
        non_tensor = batch.non_tensor_batch
        if "acc" not in non_tensor:
            raise KeyError(
                "ReLIFT needs the reward's 'acc' output per response to find the hardest questions; "
                "use a reward function that returns {'score': ..., 'acc': ...} (relift.reward does)"
            )
        outcome = group_outcomes(non_tensor["uid"], non_tensor["acc"], self.relift.correct_threshold)
        without_demo = 0
        for row in outcome.hardest_rows:
            demonstration = demonstration_text(non_tensor["target"][row]) if "target" in non_tensor else None
            prompt_ids = self._prompt_ids(batch, row)
            question_id = prompt_hash(prompt_ids)
            if demonstration is None:
                without_demo += 1
                if self.teacher is not None:
                    self.teacher.ask(question_id, {
                        "prompt_ids": prompt_ids,
                        "messages": [{"role": m["role"], "content": m["content"]}
                                     for m in non_tensor["relift_question"][row]],
                        "ground_truth": str(non_tensor["reward_model"][row]["ground_truth"]),
                        "data_source": str(non_tensor["data_source"][row]),
                    })
                continue
            self._buffer_demonstration(question_id, prompt_ids, demonstration)
        if self.replayed_per_update["share"] or self.relift.replay.taught_warmup_updates:  # own responses fill in
            for row in outcome.correct_rows:
                self._remember_correct_response(batch, row)
        metrics = {}
        if self.teacher is not None:  # replies that arrived since the last step, asked at this one or before
            try:
                taught, metrics = self.teacher.harvest()
            except TeacherUnavailable as error:
                raise RuntimeError(f"[relift] step {self.global_steps}: {error}") from None
            for question_id, info, answer in taught:
                self._buffer_demonstration(question_id, info["prompt_ids"], answer.demonstration)
        self.state.counters["hardest_seen"] += len(outcome.hardest_rows)
        self.state.counters["hardest_without_demo"] += without_demo
        return {
            **metrics,
            "relift/hardest_in_batch": len(outcome.hardest_rows),
            "relift/hardest_without_demo": without_demo,
            "relift/solve_none_frac": len(outcome.hardest_rows) / outcome.num_questions,
            "relift/solve_all_frac": outcome.num_solved_all / outcome.num_questions,
        }

    def _run_due_updates(self, hardest_share: float) -> dict:
        """While the buffer holds sft_trigger_size questions (and the guard allows), supervised updates on the
        newest, at most max_sft_updates_per_step of them."""
        metrics = {"relift/sft_loss": math.nan, "timing_s/relift_sft": 0.0}
        updates = 0
        allowed = self.state.guard.allows(hardest_share)
        while (allowed and len(self.state.buffer) >= self.relift.sft_trigger_size
               and updates < self.relift.max_sft_updates_per_step):
            start = time.perf_counter()
            metrics.update(self._sft_update(self.state.buffer.pop_newest(self.relift.sft_trigger_size)))
            elapsed = time.perf_counter() - start
            metrics["timing_s/relift_sft"] += elapsed
            self.state.account.sft_wall_s += elapsed
            updates += 1
            self.state.counters["sft_updates"] += 1
        due = len(self.state.buffer) >= self.relift.sft_trigger_size
        return {**metrics, "relift/sft_updates": updates, "relift/sft_held": int(not allowed and due)}

    def _state_metrics(self) -> dict:
        return {
            "relift/replay_pool": len(self.state.replay),
            "relift/taught_pool": len(self.state.taught),
            "relift/sft_updates_total": self.state.counters["sft_updates"],
            "relift/buffer_size": len(self.state.buffer),
            "relift/buffer_evicted": self.state.buffer.evicted,
            "relift/hardest_seen_total": self.state.counters["hardest_seen"],
            "relift/demos_used": len(self.state.demos_used),
            "relift/demos_used_frac": len(self.state.demos_used) / len(self.train_dataset),
            "relift/demos_truncated": self.state.counters["demos_truncated"],
        }

    def _buffer_demonstration(self, question_id: str, prompt_ids: list[int], demonstration: str) -> None:
        rendered = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        self.state.buffer.push(HardQuestion(question_id=question_id, prompt_ids=prompt_ids,
                                      demonstration=strip_think_prefix(rendered, demonstration)))

    def _remember_correct_response(self, batch: DataProto, row: int) -> None:
        """Keep a correct response that ended with EOS and fits a supervised sequence, without its EOS."""
        response = batch.batch["responses"][row][batch.batch["response_mask"][row].bool()].tolist()
        if response and response[-1] == self.tokenizer.eos_token_id and len(response) <= self.relift.max_target_len:
            prompt_ids = self._prompt_ids(batch, row)
            self.state.replay.push(CorrectResponse(prompt_hash(prompt_ids), prompt_ids, response[:-1]))

    @staticmethod
    def _prompt_ids(batch: DataProto, row: int) -> list[int]:
        """The prompt token ids the rollout used for this row (the batch holds them left-padded)."""
        prompts = batch.batch["prompts"][row]
        prompt_mask = batch.batch["attention_mask"][row, : prompts.shape[0]].bool()
        return prompts[prompt_mask].tolist()

    def _sft_lr(self) -> float:
        """The supervised lr of the next update: linear warm-up over relift.optim.warmup_updates."""
        optim = self.relift.optim
        return optim.lr * warmup_fraction(self.state.counters["sft_updates"], optim.warmup_updates)

    def _sft_update(self, questions: list[HardQuestion]) -> dict:
        """One supervised update on the questions' demonstrations plus relift.replay's shares of the policy's own
        earlier correct responses and of demonstrations taught before, the latter growing over
        relift.replay.taught_warmup_updates (a draw seeded by the update's index, so that a resume draws the same);
        the own responses' tokens weigh relift.replay.anchor_weight, decaying over anchor_decay_updates."""
        update = self.state.counters["sft_updates"]
        rng = random.Random(f"{self.config.data.seed}-{update}")
        draws = replay_draws(self.replayed_per_update["share"], self.replayed_per_update["taught_share"], update,
                             self.relift.replay.taught_warmup_updates, self.supervised_split[0])
        own = self.state.replay.sample(draws[0], rng)
        replayed = own + self.state.taught.sample(draws[1], rng)
        kept, micro = micro_batching(len(questions), len(replayed), *self.supervised_split)
        replayed = replayed[:kept]  # short pools: what splits into whole micro-batches, taught ones cut first
        demonstration_ids = [self.tokenizer.encode(q.demonstration, add_special_tokens=False) for q in questions]
        sft_batch = build_sft_batch(
            [q.prompt_ids for q in questions] + [r.prompt_ids for r in replayed],
            demonstration_ids + [r.response_ids for r in replayed],
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0,
            max_target_len=self.relift.max_target_len,
        )
        size = len(questions) + len(replayed)
        lr = self._sft_lr()
        weight = anchor_weight(update, self.relift.replay.anchor_weight, self.relift.replay.anchor_decay_updates)
        weights = torch.ones(size)
        weights[len(questions) : len(questions) + min(len(own), len(replayed))] = weight  # own responses come first
        data = DataProto.from_dict(tensors={**sft_batch.tensors, "sft_weights": weights},
                                   meta_info={"temperature": 1.0})
        data_td = left_right_2_no_padding(data.to_tensordict())
        tu.assign_non_tensor(
            data_td,
            calculate_entropy=self.relift.entropy_coeff != 0.0,
            global_batch_size=size,
            mini_batch_size=size,
            epochs=1,
            seed=self.config.actor_rollout_ref.actor.data_loader_seed,
            dataloader_kwargs={"shuffle": False},
            compute_loss=True,
            lr=lr,
        )
        if micro is not None:  # else the actor's micro-batches by tokens
            tu.assign_non_tensor(data_td, micro_batch_size_per_gpu=micro)
        output = self.actor_rollout_wg.sft_update(data_td)
        worker_metrics = tu.get(output, "metrics")
        if self.replayed_per_update["taught_share"]:
            for q, ids in zip(questions, demonstration_ids, strict=True):
                if len(ids) < self.relift.max_target_len:  # the taught demonstrations that fit, for later updates
                    self.state.taught.push(CorrectResponse(q.question_id, q.prompt_ids, ids))
        self.state.counters["demos_truncated"] += sft_batch.truncated  # replayed responses fit by construction
        self.state.account.sft_tokens_trained += int(sft_batch.tensors["response_mask"].sum())
        self.state.account.sft_updates += 1
        self.state.demos_used.update(q.question_id for q in questions)
        metrics = {
            "relift/sft_loss": float(np.mean(worker_metrics["relift/sft_nll"])),
            "relift/sft_grad_norm": float(np.mean(worker_metrics["grad_norm"])),
            "relift/sft_lr": lr,
            "relift/sft_replayed": len(replayed),
            "relift/sft_replayed_taught": max(0, len(replayed) - len(own)),  # short pools cut taught ones first
            "relift/sft_anchor_weight": weight,
            "relift/sft_micro_batch": micro or 0,  # per GPU; 0: cut by tokens
            "relift/sft_demo_tokens": int(sft_batch.tensors["response_mask"][: len(questions)].sum()),
            # the actor process's peak accelerator memory so far, as veRL's actor/perf/* after the RL update
            "relift/sft_max_memory_allocated_gb": float(np.max(worker_metrics["perf/max_memory_allocated_gb"])),
        }
        if "update_size" in worker_metrics:
            metrics["relift/sft_update_size"] = float(np.mean(worker_metrics["update_size"]))
        return metrics


    def _print_progress(self, batch: DataProto, metrics: dict) -> None:
        reward = batch.batch["token_level_scores"].sum(-1).mean().item()
        line = (
            f"[relift] step {self.global_steps:>4} | reward {reward:.3f} | "
            f"hardest {metrics['relift/hardest_in_batch']:>3} | buffer {metrics['relift/buffer_size']:>4} | "
            f"sft updates {metrics['relift/sft_updates']} (total {metrics['relift/sft_updates_total']})"
        )
        if not math.isnan(metrics["relift/sft_loss"]):
            line += f" | sft nll {metrics['relift/sft_loss']:.3f} in {metrics['timing_s/relift_sft']:.1f}s"
        if "teacher/pending" in metrics:
            line += (f" | teacher {metrics['teacher/verified']}/{metrics['teacher/answered']} verified, "
                     f"{metrics['teacher/pending']} pending")
        print(line, flush=True)

    def _validate(self, *args, **kwargs):
        metrics = super()._validate(*args, **kwargs)
        score = best.validation_score(metrics)
        improved = score is not None and (self.state.best_score is None or score > self.state.best_score)
        if self.relift.save_best and improved:
            self.state.best_score = score
            run_dir = os.path.abspath(self.config.trainer.default_local_dir)
            info = {"step": self.global_steps, "score": score,
                    "val_core": {key: float(value) for key, value in metrics.items() if key.startswith("val-core/")}}
            self.actor_rollout_wg.save_best(run_dir, self.global_steps, info)
            print(f"[relift] best validation score so far, {score:.4f} at step {self.global_steps}: {run_dir}/best",
                  flush=True)
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
            if self.teacher is not None and self.teacher.pending:
                print(f"[relift] asked the teacher again for {len(self.teacher.pending)} pending questions", flush=True)
        elif self.relift.enable and not self.relift.resume_without_state:
            raise FileNotFoundError(resume_state_missing(path))  # relift.main checks this before Ray starts
        elif self.relift.enable:
            print(f"[relift] {path} not found: resuming with an empty buffer (relift.resume_without_state=true)",
                  flush=True)
        return result

