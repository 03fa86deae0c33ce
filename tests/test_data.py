import os
import re

import pandas as pd
import pyarrow as pa
import pytest
from helpers import composed

from relift.data import (
    DataFileError,
    DataRowError,
    FailingDemonstrations,
    check_demonstrations,
    layout_problem,
    validate_file,
    validate_frame,
    write_parquet_atomic,
)
from relift.layout import strip_think_prefix


def good_row(i: int = 0) -> dict:
    return {
        "data_source": "synthetic",
        "prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": f"What is {i} + 1?"}],
        "target": [{"role": "assistant", "content": f"<think>\n{i} + 1\n</think>\n\\boxed{{{i + 1}}}"}],
        "ability": "math",
        "reward_model": {"ground_truth": str(i + 1), "style": "rule"},
        "extra_info": {"index": i, "split": "train"},
    }


def write(tmp_path, rows, name="train.parquet") -> str:
    path = str(tmp_path / name)
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_valid_file(tmp_path):
    assert validate_file(write(tmp_path, [good_row(0), good_row(1)]), require_target=True) == 2


def test_missing_column(tmp_path):
    rows = [good_row()]
    del rows[0]["reward_model"]
    with pytest.raises(DataFileError, match=r"train.parquet: missing column\(s\) \['reward_model'\]"):
        validate_file(write(tmp_path, rows), require_target=True)


@pytest.mark.parametrize(
    "mutate, field, problem",
    [
        (lambda r: r.update(data_source=3), "data_source", "expected a string"),
        (lambda r: r["reward_model"].update(ground_truth=""), "reward_model.ground_truth", "is empty"),
        (lambda r: r["reward_model"].update(ground_truth=None), "reward_model.ground_truth", "is missing"),
        (lambda r: r.update(target=None), "target", "is missing"),
        (lambda r: r.update(prompt="What is 1 + 1?"), "prompt", "expected a list"),
        (lambda r: r["prompt"][1].update(role="robot"), "prompt[1].role", "expected one of"),
        (lambda r: r.update(prompt=[{"role": "system", "content": "s"}]), "prompt", "no user message"),
        (lambda r: r.update(target="bad \ud800 surrogate"), "target", "not valid UTF-8"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, mutate, field, problem):
    rows = [good_row(0), good_row(1), good_row(2)]
    mutate(rows[1])
    frame = pd.DataFrame(rows)
    rejected = validate_frame(frame, "train.jsonl", require_target=True)
    assert [(r.row, r.field) for r in rejected] == [(1, field)]
    assert problem in rejected[0].problem
    if "UTF-8" not in problem:  # a lone surrogate cannot be written to a file by pandas at all
        path = str(tmp_path / "train.jsonl")  # jsonl, unlike parquet, can hold a column of mixed types
        pd.DataFrame(rows).to_json(path, orient="records", lines=True)
        with pytest.raises(DataRowError, match=re.escape(f"train.jsonl: row 1: field '{field}'")):
            validate_file(path, require_target=True)


def test_missing_target_allowed_when_not_required(tmp_path):
    rows = [good_row(0), good_row(1)]
    rows[1]["target"] = None
    assert validate_file(write(tmp_path, rows), require_target=False) == 2


def test_empty_file(tmp_path):
    path = write(tmp_path, [good_row()])
    pd.read_parquet(path).iloc[:0].to_parquet(path)
    with pytest.raises(DataFileError, match="has no rows"):
        validate_file(path, require_target=True)


def test_non_parquet_bytes(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataFileError, match="cannot be read as parquet"):
        validate_file(str(path), require_target=True)


def test_atomic_write_keeps_existing_file_on_failure(tmp_path):
    path = str(tmp_path / "out.parquet")
    write_parquet_atomic(pd.DataFrame([good_row()]), path)
    before = open(path, "rb").read()
    unwritable = pd.DataFrame({"x": [object()]})  # pyarrow cannot convert a bare object
    with pytest.raises(pa.ArrowException):
        write_parquet_atomic(unwritable, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["out.parquet"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("<think>\nx\n</think>\n\nSo \\boxed{1}.", None),
        ("x\n</think>\n\\boxed{1}", None),  # the prompt opened the block
        ("  <think>x</think>\\boxed{1}", None),
        ("Janet makes <<3*2=6>>6 dollars.\n#### 6", "no `</think>`: the think block that the prompt opens is never"),
        ("<think>\nx\n\\boxed{1}", "no `</think>`"),
        ("<think>a</think><think>b</think>\\boxed{1}", "2 `</think>`: more than one think block"),
        ("<think>\n<think>a</think>\\boxed{1}", "a `<think>` after the demonstration's start"),
        ("Sure. <think>a</think>\\boxed{1}", "a `<think>` after the demonstration's start"),
        ("<think>\n\\boxed{1}\n</think>\n\nThe answer is 1.", "no `\\boxed{}` answer after `</think>`"),
        ("<think>\nx\n</think>\n\\boxed{1", "no `\\boxed{}` answer after `</think>`"),
    ],
)
def test_layout_problem_names_what_is_wrong(text, problem):
    found = layout_problem(text)
    assert found is None if problem is None else found.startswith(problem), found


@pytest.mark.parametrize(
    "demonstration",
    ["<think>\nx = 1\n</think>\n\\boxed{1}", "<think>x = 1</think>\\boxed{1}", "\n<think>\n\nx = 1</think>\\boxed{1}",
     "x = 1\n</think>\n\\boxed{1}"],
)
def test_after_a_prompt_that_opens_the_block_a_demonstration_adds_no_second_one(demonstration):
    prompt = "<|im_start|>assistant\n<think>\n"
    trained = prompt + strip_think_prefix(prompt, demonstration)
    assert trained.count("<think>") == 1 and trained.startswith(prompt) and trained[len(prompt)] == "x"
    assert strip_think_prefix("<|im_start|>assistant\n", demonstration) == demonstration  # nothing opened


def frame_of(demonstrations: list[str], answers: list[str]) -> pd.DataFrame:
    rows = [good_row(i) for i in range(len(demonstrations))]
    for row, text, answer in zip(rows, demonstrations, answers, strict=True):
        row["target"][0]["content"] = text
        row["reward_model"]["ground_truth"] = answer
    return pd.DataFrame(rows)


def test_check_demonstrations_counts_the_layout_of_every_row_and_grades_a_sample():
    good = [f"<think>\n{i} + 1\n</think>\n\\boxed{{{i + 1}}}" for i in range(6)]
    wrong = [f"<think>\n{i} + 1\n</think>\n\\boxed{{{i + 7}}}" for i in range(6, 10)]
    off = ["The answer is 1.", "<think>\nx\n\\boxed{1}"]
    frame = frame_of(good + wrong + off, [str(i + 1) for i in range(12)])
    frame.loc[3, "target"] = None  # a row without a demonstration is not counted
    every = check_demonstrations(frame)
    assert (every.rows, every.graded, [r.row for r in every.off_layout]) == (11, 9, [10, 11])
    assert [r.row for r in every.wrong] == [6, 7, 8, 9]
    assert every.wrong[0].problem == "relift's reward grades it wrong: read '13', the ground truth is '7'"
    assert every.failing_share == pytest.approx(6 / 11) and every.first_failure.row == 6
    sample = check_demonstrations(frame, sample=3)
    assert sample.graded == 3 and sample.failing_share == pytest.approx((2 + 9 * len(sample.wrong) / 3) / 11)
    assert check_demonstrations(frame, sample=3).wrong == sample.wrong  # a seeded draw: the same every run


def test_validate_file_refuses_mostly_failing_demonstrations(tmp_path):
    texts = ["<think>\n0 + 1\n</think>\n\\boxed{1}", "1 + 1 = 2", "<think>\n2 + 1\n</think>\n\\boxed{4}",
             "<think>\n3 + 1\n</think>\n\\boxed{4}"]
    path = str(tmp_path / "train.parquet")
    frame_of(texts, ["1", "2", "3", "4"]).to_parquet(path)
    assert validate_file(path, require_target=True) == 4  # without a limit, the schema only
    assert validate_file(path, require_target=True, max_failing_demonstrations=0.5) == 4  # 2 of 4 fail
    with pytest.raises(FailingDemonstrations) as refused:
        validate_file(path, require_target=True, max_failing_demonstrations=0.4)
    assert str(refused.value) == (
        f"{path}: row 1: field 'target': no `</think>`: the think block that the prompt opens is never closed "
        "(relift's reward scores 0); of 4 demonstrations, 1 are out of the training layout, 1 of 3 graded in it "
        "are wrong: about 50% fail, more than 40%")


def test_trainer_refuses_mostly_failing_demonstrations_before_ray(tmp_path):
    from relift.preflight import training_data

    path = str(tmp_path / "gsm8k_style.parquet")
    frame_of([f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}" for i in range(3)], ["1", "2", "3"]).to_parquet(path)
    problems, rows = training_data(composed(f"data.train_files={path}"))
    assert rows is None and problems == [
        f"{path}: row 0: field 'target': no `</think>`: the think block that the prompt opens is never "
        "closed (relift's reward scores 0); of 3 demonstrations, 3 are out of the training layout: about 100% "
        "fail, more than 50%: prepare the file with dataset/prepare_train.py "
        "(--failing-demos drop or rl-only), or raise relift.max_failing_demonstrations=0.5 (1: no check)"]
    # The check is off at 1, without ReLIFT's supervised updates, and with a reward that does not need `</think>`.
    for off in ("relift.max_failing_demonstrations=1", "relift.enable=false",
                "reward.custom_reward_function.reward_kwargs.require_think=false"):
        assert training_data(composed(f"data.train_files={path}", "data.train_batch_size=3", off)) == ([], 3)
    problems, _ = training_data(composed(f"data.train_files={path}", "relift.max_failing_demonstrations=1.5"))
    assert problems == ["relift.max_failing_demonstrations=1.5: a share from 0 to 1, e.g. 0.5 (1 turns the check off)"]
