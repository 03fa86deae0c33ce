"""The ReLIFT step: after the RL update of each step, buffer the questions the policy failed on every
sampled response, and while the buffer holds M of them, take supervised updates on their demonstrations.

No veRL, no Ray: `relift.trainer` turns veRL's batch into `Response` records (`responses_of`) and passes
the function that runs one supervised update on the actor workers; the tests pass their own.

    interleaver = Interleaver(settings, state, tokenizer, teacher=None, demos_available=len(train_rows))
    metrics = interleaver.step(step, responses_of(non_tensor, tensors), update)

One step, in order (ReLIFT, arXiv 2506.07527, Algorithm 1, plus relift's stabilizers):
1. the questions none of whose responses is correct (acc >= relift.correct_threshold) enter the buffer with
   their row's demonstration; those without one go to the teacher, when there is one (relift.teacher);
2. with replay on, each other question's first correct response that ended with EOS enters the replay pool;
3. the teacher's verified replies that arrived since the last step enter the buffer;
4. while the buffer holds M questions, the runaway guard allows it (relift.guard) and fewer than
   relift.max_sft_updates_per_step ran, one supervised update on the M newest (relift.sft_plan).
Everything that must survive a resume is in `relift.state.RunState`.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from relift.buffer import CorrectResponse, HardQuestion
from relift.hardest import group_outcomes
from relift.layout import strip_think_prefix
from relift.sft import build_sft_batch, demonstration_text
from relift.sft_plan import SupervisedSettings, UpdatePlan, plan_update, replay_asked
from relift.state import RunState
from relift.teacher import TeacherQueue, TeacherUnavailable


class Tokenizer(Protocol):
    """What the step needs of a Hugging Face tokenizer."""

    eos_token_id: int
    pad_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class Response:
    """One sampled response of a step.

    group: the question it answers within this step (veRL's uid): a question's n responses share it.
    prompt_ids: the prompt tokens as the rollout saw them, chat template applied, without padding.
    response_ids: the sampled tokens without padding, ending with EOS when the response ended there.
    acc: the reward's accuracy output; correct when >= relift.correct_threshold.
    demonstration: the row's worked solution text, or None.
    question: the row's chat messages, ground truth and data source, for the teacher; None without one.
    """

    group: str
    prompt_ids: Sequence[int]
    response_ids: Sequence[int]
    acc: float
    demonstration: str | None
    question: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SupervisedBatch:
    """One supervised update's input: relift.sft's layout (B = plan.size rows: new demonstrations, then own
    responses, then taught demonstrations) plus `sft_weights` (B,), each sequence's per-token loss weight."""

    tensors: dict[str, torch.Tensor]
    plan: UpdatePlan


UpdateFn = Callable[[SupervisedBatch], Mapping[str, float]]
"""Runs one supervised optimizer step; returns its measurements: "nll" (the batch's plain token-mean NLL),
"grad_norm", "max_memory_gb" (the actor's peak accelerator memory so far) and, when measured,
"update_size" (||delta theta|| / ||theta||)."""


def question_id(prompt_ids: Sequence[int]) -> str:
    """A question's key in the buffer and the replay pools, the same at every step and after a resume: the
    SHA-1 of its prompt tokens as the rollout saw them."""
    return hashlib.sha1(np.asarray(prompt_ids, dtype=np.int64).tobytes()).hexdigest()


def responses_of(non_tensor: Mapping[str, np.ndarray], tensors: Mapping[str, torch.Tensor],
                 with_questions: bool = False) -> list[Response]:
    """The records of a veRL rollout batch: non_tensor holds per-row arrays (`uid`, `acc` from the reward,
    `target` with the demonstration; with_questions: `relift_question`, `reward_model`, `data_source`),
    tensors `prompts` (N, P) left-padded, `attention_mask` (N, P + R), `responses` (N, R) and
    `response_mask` (N, R).

    Raises KeyError when the reward returned no `acc`: without it no question can be called hardest."""
    if "acc" not in non_tensor:
        raise KeyError(
            "ReLIFT needs the reward's 'acc' output per response to find the hardest questions; "
            "use a reward function that returns {'score': ..., 'acc': ...} (relift.reward does)"
        )
    prompts, responses = tensors["prompts"], tensors["responses"]
    prompt_mask = tensors["attention_mask"][:, : prompts.shape[1]].bool()
    response_mask = tensors["response_mask"].bool()
    targets = non_tensor.get("target")
    records = []
    for row in range(len(non_tensor["uid"])):
        question = None
        if with_questions:
            question = {
                "messages": [{"role": m["role"], "content": m["content"]} for m in non_tensor["relift_question"][row]],
                "ground_truth": str(non_tensor["reward_model"][row]["ground_truth"]),
                "data_source": str(non_tensor["data_source"][row]),
            }
        records.append(Response(
            group=non_tensor["uid"][row],
            prompt_ids=prompts[row][prompt_mask[row]].tolist(),
            response_ids=responses[row][response_mask[row]].tolist(),
            acc=float(non_tensor["acc"][row]),
            demonstration=demonstration_text(targets[row]) if targets is not None else None,
            question=question,
        ))
    return records


class Interleaver:
    def __init__(self, settings: SupervisedSettings, state: RunState, tokenizer: Tokenizer,
                 teacher: TeacherQueue | None = None, demos_available: int = 0):
        """state: the run's state (buffer, pools, guard, counters, compute totals), changed in place.
        teacher: the queue that asks for the demonstrations rows lack, or None. demos_available: the training
        rows, for relift/demos_used_frac."""
        self.settings = settings
        self.state = state
        self.tokenizer = tokenizer
        self.teacher = teacher
        self.demos_available = demos_available
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def step(self, step: int, responses: Sequence[Response], update: UpdateFn) -> dict[str, float]:
        """ReLIFT's part of training step `step`, after its RL update (module docstring); returns the step's
        relift/ and teacher/ metrics. Raises RuntimeError, one line naming the step, when the teacher's
        endpoint refuses the run (relift.teacher.TeacherUnavailable)."""
        try:
            metrics = self._collect(responses)
        except TeacherUnavailable as error:
            raise RuntimeError(f"[relift] step {step}: {error}") from None
        metrics.update(self._run_due_updates(metrics["relift/solve_none_frac"], update))
        metrics.update(self._state_metrics())
        return metrics

    def _collect(self, responses: Sequence[Response]) -> dict[str, float]:
        outcome = group_outcomes(np.array([r.group for r in responses], dtype=object),
                                 np.array([r.acc for r in responses]), self.settings.correct_threshold)
        without_demo = 0
        for row in outcome.hardest_rows:
            response = responses[row]
            qid = question_id(response.prompt_ids)
            if response.demonstration is None:
                without_demo += 1
                if self.teacher is not None:
                    self.teacher.ask(qid, {"prompt_ids": list(response.prompt_ids), **response.question})
                continue
            self._buffer(qid, list(response.prompt_ids), response.demonstration)
        if self.settings.replays_own:
            for row in outcome.correct_rows:
                self._remember(responses[row])
        metrics = {}
        if self.teacher is not None:  # replies that arrived since the last step, asked at this one or before
            taught, metrics = self.teacher.harvest()
            for qid, info, answer in taught:
                self._buffer(qid, info["prompt_ids"], answer.demonstration)
        counters = self.state.counters
        counters["hardest_seen"] += len(outcome.hardest_rows)
        counters["hardest_without_demo"] += without_demo
        return {
            **metrics,
            "relift/hardest_in_batch": len(outcome.hardest_rows),
            "relift/hardest_without_demo": without_demo,
            "relift/solve_none_frac": len(outcome.hardest_rows) / outcome.num_questions,
            "relift/solve_all_frac": outcome.num_solved_all / outcome.num_questions,
        }

    def _buffer(self, qid: str, prompt_ids: list[int], demonstration: str) -> None:
        rendered = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        self.state.buffer.push(HardQuestion(qid, prompt_ids, strip_think_prefix(rendered, demonstration)))

    def _remember(self, response: Response) -> None:
        """Keep a correct response that ended with EOS and fits a supervised sequence, without its EOS."""
        ids = list(response.response_ids)
        if ids and ids[-1] == self.tokenizer.eos_token_id and len(ids) <= self.settings.max_target_len:
            prompt_ids = list(response.prompt_ids)
            self.state.replay.push(CorrectResponse(question_id(prompt_ids), prompt_ids, ids[:-1]))

    def _run_due_updates(self, hardest_share: float, update: UpdateFn) -> dict[str, float]:
        metrics = {"relift/sft_nll": math.nan, "timing_s/relift_sft": 0.0}
        updates = 0
        allowed = self.state.guard.allows(hardest_share)
        buffer, new = self.state.buffer, self.settings.new
        while allowed and len(buffer) >= new and updates < self.settings.max_updates_per_step:
            start = time.perf_counter()
            metrics.update(self._supervised_update(buffer.pop_newest(new), update))
            elapsed = time.perf_counter() - start
            metrics["timing_s/relift_sft"] += elapsed
            self.state.account.sft_wall_s += elapsed
            updates += 1
        return {**metrics, "relift/sft_updates": updates, "relift/sft_held": int(not allowed and len(buffer) >= new)}

    def _supervised_update(self, questions: list[HardQuestion], update: UpdateFn) -> dict[str, float]:
        """One update on the questions' demonstrations plus the plan's replayed responses (relift.sft_plan),
        drawn with a seed of the update's index, so that a resume draws the same."""
        state, settings = self.state, self.settings
        k = state.counters["sft_updates"]
        rng = random.Random(f"{settings.seed}-{k}")
        own_asked, taught_asked = replay_asked(settings, k)
        own = state.replay.sample(own_asked, rng)
        taught = state.taught.sample(taught_asked, rng)
        plan = plan_update(settings, k, len(own), len(taught))
        replayed = own[: plan.own] + taught[: plan.taught]
        demonstration_ids = [self.tokenizer.encode(q.demonstration, add_special_tokens=False) for q in questions]
        sft_batch = build_sft_batch(
            [q.prompt_ids for q in questions] + [r.prompt_ids for r in replayed],
            demonstration_ids + [r.response_ids for r in replayed],
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self._pad, max_target_len=settings.max_target_len,
        )
        weights = torch.ones(plan.size)
        weights[plan.new : plan.new + plan.own] = plan.anchor_weight
        measured = update(SupervisedBatch({**sft_batch.tensors, "sft_weights": weights}, plan))

        if settings.taught:
            for q, ids in zip(questions, demonstration_ids, strict=True):
                if len(ids) < settings.max_target_len:  # the taught demonstrations that fit, for later updates
                    state.taught.push(CorrectResponse(q.question_id, q.prompt_ids, ids))
        response_mask = sft_batch.tensors["response_mask"]
        state.counters["sft_updates"] += 1
        state.counters["demos_truncated"] += sft_batch.truncated  # replayed responses fit by construction
        state.account.sft_tokens_trained += int(response_mask.sum())
        state.account.tokens_in_sft_updates += int(sft_batch.tensors["attention_mask"].sum())
        state.account.sft_updates += 1
        state.demos_used.update(q.question_id for q in questions)
        metrics = {
            "relift/sft_nll": measured["nll"],
            "relift/sft_grad_norm": measured["grad_norm"],
            "relift/sft_lr": plan.lr,
            "relift/sft_replayed_own": plan.own,
            "relift/sft_replayed_taught": plan.taught,
            "relift/sft_anchor_weight": plan.anchor_weight,
            "relift/sft_micro_batch": plan.micro_batch or 0,  # per GPU; 0: cut by tokens
            "relift/sft_demo_tokens": int(response_mask[: plan.new].sum()),
            "relift/sft_max_memory_allocated_gb": measured["max_memory_gb"],
        }
        if "update_size" in measured:
            metrics["relift/sft_update_size"] = measured["update_size"]
        return metrics

    def _state_metrics(self) -> dict[str, float]:
        state = self.state
        used = len(state.demos_used)
        return {
            "relift/replay_pool": len(state.replay),
            "relift/taught_pool": len(state.taught),
            "relift/sft_updates_total": state.counters["sft_updates"],
            "relift/buffer_size": len(state.buffer),
            "relift/buffer_evicted": state.buffer.evicted,
            "relift/hardest_seen_total": state.counters["hardest_seen"],
            "relift/demos_used": used,
            "relift/demos_used_frac": used / self.demos_available if self.demos_available else 0.0,
            "relift/demos_truncated": state.counters["demos_truncated"],
        }


def progress_line(step: int, reward: float, metrics: Mapping[str, float]) -> str:
    """The console's line for one step: reward, hardest questions, buffer, supervised updates, teacher."""
    line = (
        f"[relift] step {step:>4} | reward {reward:.3f} | hardest {metrics['relift/hardest_in_batch']:>3} | "
        f"buffer {metrics['relift/buffer_size']:>4} | sft updates {metrics['relift/sft_updates']} "
        f"(total {metrics['relift/sft_updates_total']})"
    )
    if not math.isnan(metrics["relift/sft_nll"]):
        line += f" | sft nll {metrics['relift/sft_nll']:.3f} in {metrics['timing_s/relift_sft']:.1f}s"
    if "teacher/pending" in metrics:
        line += (f" | teacher {metrics['teacher/verified']}/{metrics['teacher/answered']} verified, "
                 f"{metrics['teacher/pending']} pending")
    return line
