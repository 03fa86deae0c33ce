"""relift.interleave: the ReLIFT step as plain code, with the toy's real tokenizer and a recording update in
place of the actor workers. Every rule the trainer follows after an RL update is checked here in milliseconds;
tests/test_e2e_cpu.py checks that the trainer wires it to veRL."""

import dataclasses
import functools
import json
import math
import random

import pytest
import torch
from helpers import SECRET, Server, composed

from relift.accounting import Account
from relift.checks import supervised_settings
from relift.interleave import Interleaver, Response, SupervisedBatch, progress_line, question_id, responses_of
from relift.layout import strip_think_prefix
from relift.reward import grading_stop
from relift.sft_plan import anchor_weight, replay_draws
from relift.state import RunState
from relift.teacher import Teacher, TeacherQueue, config_from
from relift.toy.digit_tasks import TYPES, make_question, make_rows
from relift.toy.tiny_model import _texts, build_tokenizer

N = 4  # responses per question, as the toy's rollout.n


@pytest.fixture(scope="module")
def tokenizer():
    rows = make_rows(20, None, TYPES, "train", 0, set())
    return build_tokenizer(_texts(rows), vocab_size=384)


class Question:
    """A digit-task question i as the rollout sees it: prompt tokens, its demonstration, a correct answer."""

    def __init__(self, tokenizer, i: int, kind: str = "inc"):
        digits = (1 + i % 8, 2, 3, 4, 1 + i // 8 % 9)  # a valid question of either kind for i < 72
        text, self.demonstration, answer = make_question(kind, digits)
        messages = [{"role": "system", "content": "Think."}, {"role": "user", "content": text}]
        self.messages = messages
        self.ground_truth = answer
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        self.prompt_ids = tokenizer.encode(rendered, add_special_tokens=False)
        self.eos = tokenizer.eos_token_id
        answer_text = f"{' '.join(answer)}\n</think>\n\\boxed{{{answer}}}"
        self.answer_ids = tokenizer.encode(answer_text, add_special_tokens=False)
        self.id = question_id(self.prompt_ids)

    def responses(self, correct: list[bool], demonstration: bool = True, ended: bool = True,
                  group: str | None = None) -> list[Response]:
        question = {"messages": self.messages, "ground_truth": self.ground_truth, "data_source": "digits/inc"}
        return [Response(group=group or self.id, prompt_ids=self.prompt_ids,
                         response_ids=self.answer_ids + ([self.eos] if ended else []) if ok else [5, 6, self.eos],
                         acc=float(ok), demonstration=self.demonstration if demonstration else None,
                         question=question)
                for ok in correct]


def wrong(*questions: Question) -> list[Response]:
    return [r for q in questions for r in q.responses([False] * N)]


class Recorder:
    """The update function: records each supervised batch, answers like the actor workers (an "nll" that
    depends on the batch only)."""

    def __init__(self):
        self.batches: list[SupervisedBatch] = []

    def __call__(self, batch: SupervisedBatch) -> dict:
        self.batches.append(batch)
        return {"nll": nll(batch), "grad_norm": 0.25, "max_memory_gb": 0.0}


def nll(batch: SupervisedBatch) -> float:
    return float(batch.tensors["response_mask"].sum()) / 100


@functools.cache
def toy_config(*overrides: str):
    return composed("device=cpu", "toy=digits", *overrides)


def interleaver(tokenizer, *overrides: str, teacher=None, **settings) -> Interleaver:
    """The toy's configuration (device=cpu toy=digits) with Hydra overrides and settings replaced."""
    config = toy_config(*overrides)
    state = RunState(config.relift, Account(arm="relift"), teacher)
    return Interleaver(dataclasses.replace(supervised_settings(config), **settings), state, tokenizer, teacher,
                       demos_available=100)


PAPER = dict(own=0, taught=0, anchor_weight=1.0, warmup_updates=0)  # interleave=paper's supervised batch


def test_all_wrong_questions_are_buffered_and_the_newest_trained_once_m_are_held(tokenizer):
    step = interleaver(tokenizer, **PAPER)
    qs = [Question(tokenizer, i) for i in range(6)]
    update = Recorder()
    solved_once = qs[3].responses([True, False, False, False])
    metrics = step.step(1, wrong(*qs[:3]) + solved_once + qs[4].responses([True] * N), update)
    assert update.batches == [] and len(step.state.buffer) == 3
    assert (metrics["relift/hardest_in_batch"], metrics["relift/solve_none_frac"]) == (3, 3 / 5)
    assert metrics["relift/solve_all_frac"] == 1 / 5 and math.isnan(metrics["relift/sft_nll"])
    assert metrics["relift/sft_updates"] == 0 and metrics["relift/demos_used"] == 0

    metrics = step.step(2, wrong(qs[5]) + wrong(qs[1]), update)  # q1 again: refreshed, not duplicated
    [batch] = update.batches
    newest = [qs[1], qs[5], qs[2], qs[0]]
    assert batch.plan.size == 4 and batch.tensors["prompts"].shape[0] == 4
    for row, q in enumerate(newest):
        prompt = batch.tensors["prompts"][row]
        assert prompt[prompt != tokenizer.pad_token_id].tolist() == q.prompt_ids
        demonstration = strip_think_prefix(tokenizer.decode(q.prompt_ids), q.demonstration)  # the prompt opened it
        expected = tokenizer.encode(demonstration, add_special_tokens=False) + [tokenizer.eos_token_id]
        response = batch.tensors["responses"][row][batch.tensors["response_mask"][row].bool()]
        assert response.tolist() == expected
    assert batch.tensors["sft_weights"].tolist() == [1.0] * 4
    assert len(step.state.buffer) == 0 and step.state.demos_used == {q.id for q in newest}
    assert metrics["relift/sft_nll"] == nll(batch) and metrics["relift/sft_updates"] == 1
    assert metrics["relift/demos_used_frac"] == 0.04 and metrics["relift/sft_lr"] == pytest.approx(1e-3)
    assert step.state.account.sft_updates == 1 and step.state.account.sft_tokens_trained == sum(
        int(batch.tensors["response_mask"].sum()) for batch in update.batches)
    assert step.state.account.tokens_in_sft_updates == sum(  # prompts and targets, padding left out
        int(batch.tensors["attention_mask"].sum()) for batch in update.batches) > step.state.account.sft_tokens_trained


def test_several_updates_per_step_drain_the_buffer_m_at_a_time(tokenizer):
    step = interleaver(tokenizer, **{**PAPER, "max_updates_per_step": 3, "warmup_updates": 4})
    qs = [Question(tokenizer, i) for i in range(14)]
    update = Recorder()
    metrics = step.step(1, wrong(*qs), update)
    assert len(update.batches) == 3 and metrics["relift/sft_updates"] == 3
    assert len(step.state.buffer) == 2 and metrics["relift/sft_updates_total"] == 3
    assert [b.plan.lr for b in update.batches] == pytest.approx([2.5e-4, 5e-4, 7.5e-4])  # the warm-up, per update
    assert metrics["relift/sft_lr"] == pytest.approx(7.5e-4)  # the last update's, as its NLL
    assert metrics["relift/sft_nll"] == nll(update.batches[-1])
    trained = [question_id(row[row != tokenizer.pad_token_id].tolist())
               for b in update.batches for row in b.tensors["prompts"]]
    assert trained == [q.id for q in reversed(qs[2:])]  # newest first, each once
    assert metrics["timing_s/relift_sft"] >= 0 and step.state.account.sft_wall_s == metrics["timing_s/relift_sft"]


def test_a_demonstration_longer_than_max_target_len_is_cut_counted_and_not_replayed(tokenizer):
    step = interleaver(tokenizer, max_target_len=8, own=0)  # a demonstration is ~20 tokens
    update = Recorder()
    metrics = step.step(1, wrong(*[Question(tokenizer, i) for i in range(4)]), update)
    [batch] = update.batches
    assert metrics["relift/demos_truncated"] == 4 and step.state.counters["demos_truncated"] == 4
    assert batch.tensors["response_mask"].sum(1).tolist() == [8] * 4
    assert tokenizer.eos_token_id not in batch.tensors["responses"][:, -1].tolist()  # the solution did not end there
    assert len(step.state.taught) == 0  # only demonstrations that fit are replayed


def test_replay_keeps_correct_responses_that_ended_and_weighs_them_by_the_anchor_schedule(tokenizer):
    step = interleaver(tokenizer, max_target_len=40, largest_micro_batch=8, taught_warmup_updates=0)
    settings = step.settings
    assert (settings.own, settings.taught) == (16, 12)  # the toy's shares of a batch of 4 new
    kept, cut, too_long = Question(tokenizer, 20), Question(tokenizer, 21), Question(tokenizer, 22)
    update = Recorder()
    long_one = [Response(too_long.id, too_long.prompt_ids, [7] * 40 + [tokenizer.eos_token_id], 1.0, None)]
    step.step(1, kept.responses([False, True, True, False]) + cut.responses([True] * N, ended=False) + long_one
              + too_long.responses([False] * 3) + wrong(*[Question(tokenizer, i) for i in range(4)]), update)
    assert len(step.state.replay) == 1  # one per question: its first correct response, without the EOS
    [item] = step.state.replay.sample(5, random.Random(0))
    assert item.question_id == kept.id and item.response_ids == kept.answer_ids
    [first] = update.batches
    assert (first.plan.own, first.plan.taught, first.plan.micro_batch) == (1, 0, 5)  # 4 new + 1 own, one forward
    assert first.tensors["sft_weights"].tolist() == [1.0] * 4 + [anchor_weight(0, 16.0, 20)]
    assert len(step.state.taught) == 4  # every demonstration fits max_target_len

    step.step(2, wrong(*[Question(tokenizer, i) for i in range(4, 8)]), update)
    second = update.batches[1]
    # the own pool's 1 and the taught pool's 4: one forward of 8 cuts one taught demonstration (two of 4 would too)
    assert (second.plan.own, second.plan.taught, second.plan.micro_batch) == (1, 3, 8)
    replayed = [question_id(row[row != tokenizer.pad_token_id].tolist()) for row in second.tensors["prompts"][4:]]
    assert replayed[0] == kept.id and set(replayed[1:]) < {Question(tokenizer, i).id for i in range(4)}
    # the own response weighs the anchor, taught demonstrations as much as new ones
    assert second.tensors["sft_weights"].tolist() == [1.0] * 4 + [anchor_weight(1, 16.0, 20)] + [1.0] * 3


def test_taught_replay_warms_up_and_own_responses_fill_in(tokenizer):
    step = interleaver(tokenizer, max_target_len=40, largest_micro_batch=None, taught_warmup_updates=4,
                       max_updates_per_step=4)
    solved = [Question(tokenizer, i, "copy") for i in range(40, 70)]
    update = Recorder()
    step.step(1, [r for q in solved for r in q.responses([True] * N)], update)  # fills the own pool
    assert len(step.state.replay) == 30 and update.batches == []
    step.step(2, wrong(*[Question(tokenizer, i) for i in range(12)]), update)  # three updates of 4
    for k, batch in enumerate(update.batches):
        own, taught = replay_draws(16, 12, k, 4, 1)
        assert (batch.plan.own, batch.plan.taught) == (own, min(taught, 4 * k)), k  # the taught pool grows by 4
        assert batch.tensors["sft_weights"][4 : 4 + own].tolist() == [anchor_weight(k, 16.0, 20)] * own


def test_the_guard_holds_updates_while_the_hardest_share_jumps(tokenizer):
    step = interleaver(tokenizer, "relift.guard.max_rise=0.2", "relift.guard.window=2", **PAPER)
    qs = [Question(tokenizer, i) for i in range(20)]
    solved = [Question(tokenizer, i, "copy") for i in range(40, 48)]
    update = Recorder()

    def batch(hardest, solved_count):
        return wrong(*hardest) + [r for q in solved[:solved_count] for r in q.responses([True] * N)]

    assert step.step(1, batch(qs[:1], 7), update)["relift/sft_held"] == 0  # share 1/8, buffer 1 < 4
    metrics = step.step(2, batch(qs[1:5], 4), update)  # share 1/2: more than 1/8 + 0.2
    assert (metrics["relift/sft_held"], metrics["relift/sft_updates"], len(step.state.buffer)) == (1, 0, 5)
    metrics = step.step(3, batch(qs[5:9], 4), update)  # 1/2 again: not above min(1/8, 1/2) + 0.2 either
    assert metrics["relift/sft_held"] == 1
    metrics = step.step(4, batch(qs[9:13], 4), update)  # the rise lasted the window: the new reference
    assert (metrics["relift/sft_held"], metrics["relift/sft_updates"]) == (0, 1)


def test_a_resumed_step_trains_what_the_uninterrupted_run_trains(tokenizer):
    steps = [wrong(*[Question(tokenizer, i) for i in range(4 * s, 4 * s + 4)])
             + [r for q in [Question(tokenizer, 40 + s, "copy")] for r in q.responses([True, False, True, True])]
             for s in range(4)]
    whole, update = interleaver(tokenizer, max_target_len=40), Recorder()
    for number, responses in enumerate(steps[:2], 1):
        whole.step(number, responses, update)
    saved = json.loads(json.dumps(whole.state.state_dict()))
    resumed, resumed_update = interleaver(tokenizer, max_target_len=40), Recorder()
    resumed.state.load_state_dict(saved)
    for number, responses in enumerate(steps[2:], 3):
        expected = whole.step(number, responses, update)
        assert resumed.step(number, responses, resumed_update) == {**expected, "timing_s/relift_sft": pytest.approx(
            expected["timing_s/relift_sft"], abs=1.0)}
    for ours, theirs in zip(resumed_update.batches, update.batches[2:], strict=True):
        assert ours.plan == theirs.plan and ours.plan.own > 0  # the replay draws are the same
        assert all(torch.equal(ours.tensors[key], theirs.tensors[key]) for key in theirs.tensors)


def test_the_teacher_fills_questions_without_demonstrations_and_a_refusal_stops_the_step(tokenizer, tmp_path,
                                                                                         monkeypatch):
    qs = [Question(tokenizer, i) for i in range(4)]
    refused = Question(tokenizer, 9)
    server = Server(tmp_path, {q.messages[-1]["content"]: q.demonstration for q in qs},
                    {refused.messages[-1]["content"]: ["401"]})
    monkeypatch.setenv("RELIFT_TEST_KEY", SECRET)
    try:
        teacher_config = config_from(toy_config().relift.teacher, base_url=server.url, model="teacher-7b",
                                     cache=str(tmp_path / "cache.jsonl"), api_key_env="RELIFT_TEST_KEY")
        teacher = TeacherQueue(Teacher(teacher_config))
        step = interleaver(tokenizer, teacher=teacher, **PAPER)
        update = Recorder()
        metrics = step.step(1, [r for q in qs for r in q.responses([False] * N, demonstration=False)], update)
        assert (metrics["relift/hardest_without_demo"], metrics["teacher/asked"]) == (4, 4)
        for _, future in list(teacher.pending.values()):
            future.result(timeout=30)
        metrics = step.step(2, qs[0].responses([True] * N), update)
        assert metrics["teacher/verified"] == 4 and metrics["relift/sft_updates"] == 1
        assert {question_id(row[row != tokenizer.pad_token_id].tolist())
                for row in update.batches[0].tensors["prompts"]} == {q.id for q in qs}
        assert step.state.counters["hardest_without_demo"] == 4

        step.step(3, refused.responses([False] * N, demonstration=False), update)
        for _, future in list(teacher.pending.values()):
            future.exception(timeout=30)
        with pytest.raises(RuntimeError, match=r"^\[relift\] step 4: .*check the model name and the key"):
            step.step(4, qs[0].responses([True] * N), update)
    finally:
        server.stop()


def test_records_come_from_the_rollout_batchs_tensors():
    pad, eos = 0, 9
    tensors = {
        "prompts": torch.tensor([[pad, 3, 4], [5, 6, 7]]),
        "responses": torch.tensor([[8, eos, pad, pad], [8, 8, 8, 8]]),
        "attention_mask": torch.tensor([[0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]),
        "response_mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]),
    }
    non_tensor = {"uid": ["a", "b"], "acc": [1.0, 0.0],
                  "target": [[{"role": "assistant", "content": "sol"}], None]}
    first, second = responses_of(non_tensor, tensors)
    assert (first.group, first.prompt_ids, first.response_ids, first.acc, first.demonstration) == (
        "a", [3, 4], [8, eos], 1.0, "sol")
    assert (second.prompt_ids, second.response_ids, second.demonstration) == ([5, 6, 7], [8, 8, 8, 8], None)
    with pytest.raises(KeyError, match="needs the reward's 'acc' output"):
        responses_of({"uid": ["a"]}, tensors)


def test_a_step_whose_grading_failed_for_every_answer_stops():
    assert grading_stop({"grader/answers": 0, "grader/failures": 0}) is None  # nothing needed a grader
    assert grading_stop({"grader/answers": 8, "grader/failures": 7}) is None
    assert grading_stop({"grader/answers": 8, "grader/failures": 8}).startswith(
        "grading failed for all 8 answers sent to the grader processes")
    assert grading_stop({}) is None  # another reward function, without the flags


def test_the_progress_line_names_the_step_the_buffer_and_the_update():
    metrics = {"relift/hardest_in_batch": 3, "relift/buffer_size": 12, "relift/sft_updates": 1,
               "relift/sft_updates_total": 7, "relift/sft_nll": 0.4321, "timing_s/relift_sft": 1.26}
    assert progress_line(5, 0.25, metrics) == (
        "[relift] step    5 | reward 0.250 | hardest   3 | buffer   12 | sft updates 1 (total 7) | "
        "sft nll 0.432 in 1.3s")
    quiet = progress_line(6, 0.5, {**metrics, "relift/sft_nll": math.nan, "teacher/pending": 2,
                                   "teacher/verified": 1, "teacher/answered": 3})
    assert quiet.endswith("sft updates 1 (total 7) | teacher 1/3 verified, 2 pending")
