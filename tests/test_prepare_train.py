"""dataset/prepare_train.py as a user runs it: a subprocess on local files."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO

from relift.data import validate_file

SCRIPT = os.path.join(REPO, "dataset", "prepare_train.py")


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


def openr1_rows():
    return [
        {"problem": "What is 2+2?", "solution": "<think>\n2+2=4\n</think>\nSo \\boxed{4}.", "answer": "4",
         "source": "amc"},
        {"problem": "What is 3+3?", "solution": "<think>\n3+3=6\n</think>\nSo \\boxed{6}.", "answer": "",
         "source": "amc"},
        {"problem": "What is 2+2?", "solution": "<think>\n2+2=4\n</think>\nSo \\boxed{4}.", "answer": "4",
         "source": "amc"},
    ]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_openr1_style_file_is_mapped_deduplicated_and_valid(tmp_path):
    src, out = tmp_path / "openr1.jsonl", tmp_path / "train.parquet"
    write_jsonl(src, openr1_rows())
    result = prepare("--input", src, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "dropped: exact duplicate" in result.stdout
    frame = pd.read_parquet(out)
    assert len(frame) == 2 and validate_file(str(out), require_target=True) == 2
    assert frame.prompt[0][0]["role"] == "system" and "systematic, thorough reasoning" in frame.prompt[0][0]["content"]
    assert frame.prompt[0][1]["content"] == "What is 2+2?"
    assert frame.reward_model[1]["ground_truth"] == "6"  # taken from the solution's last \boxed{}
    assert frame.target[0][0]["role"] == "assistant"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"problem": "", "solution": "s", "answer": "1"}], "row 0: field 'prompt[0].content': is empty"),
        ([{"problem": "q", "solution": None, "answer": "1"}], "row 0: field 'target': is missing"),
        ([{"problem": "q", "solution": "no box", "answer": ""}], "row 0: field 'reward_model.ground_truth'"),
        ([{"text": "q"}], "row 0: field '*': unrecognised row shape"),
    ],
)
def test_bad_row_fails_with_file_row_field_and_keeps_existing_output(tmp_path, rows, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "train.parquet"
    write_jsonl(src, rows)
    out.write_bytes(b"previous output")
    result = prepare("--input", src, "--output", out, "--system-prompt", "")
    assert result.returncode == 2
    assert f"{src}: {message}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert out.read_bytes() == b"previous output"


def test_schema_file_missing_column(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "train.parquet"
    row = {"data_source": "x", "prompt": [{"role": "user", "content": "q"}], "ability": "math"}
    pd.DataFrame([row]).to_parquet(src)
    result = prepare("--input", src, "--output", out)
    assert result.returncode == 2 and "unrecognised row shape" in result.stderr


def test_skip_bad_writes_rejects(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "train.parquet"
    write_jsonl(src, openr1_rows() + [{"problem": "", "solution": "s", "answer": "1"}])
    result = prepare("--input", src, "--output", out, "--skip-bad")
    assert result.returncode == 0, result.stderr
    rejects = [json.loads(line) for line in open(tmp_path / "train.rejects.jsonl")]
    assert [(r["row"], r["field"]) for r in rejects] == [(3, "prompt[1].content")]
    assert len(pd.read_parquet(out)) == 2


@pytest.mark.parametrize("content, message", [(b"", "has no rows"), (b"PAR1 not really", "cannot be read as parquet")])
def test_unreadable_files(tmp_path, content, message):
    src = tmp_path / ("in.jsonl" if not content else "in.parquet")
    src.write_bytes(content)
    result = prepare("--input", src, "--output", tmp_path / "out.parquet")
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_tokenizer_length_filter(tiny, tmp_path):
    src, out = tmp_path / "openr1.jsonl", tmp_path / "train.parquet"
    long_problem = "What is " + " + ".join(["1"] * 200) + "?"
    rows = openr1_rows()[:2] + [{"problem": long_problem, "solution": "\\boxed{200}", "answer": "200"}]
    write_jsonl(src, rows)
    result = prepare("--input", src, "--output", out, "--tokenizer", tiny["model"], "--system-prompt", "",
                     "--max-prompt-length", "64", "--max-target-len", "8")
    assert result.returncode == 0, result.stderr
    assert "dropped: prompt longer than --max-prompt-length" in result.stdout
    assert "demonstration longer than --max-target-len" in result.stdout
    assert len(pd.read_parquet(out)) == 2


def summary(stdout: str) -> dict:
    return {key: value for key, value in re.findall(r"^  (.+?) {2,}(\S+)$", stdout, re.M)}


def test_demonstrations_are_put_into_the_training_layout_and_graded(tmp_path):
    """GSM8K-style targets and plain OpenR1 solutions become `<think>` ... `</think>` + a boxed answer that
    relift's reward grades correct; one already in the layout is left as it is."""
    gsm8k, openr1, out = tmp_path / "gsm8k.jsonl", tmp_path / "openr1.jsonl", tmp_path / "train.parquet"
    in_layout = "<think>\n2+2=4\n</think>\nSo \\boxed{4}."
    write_jsonl(gsm8k, [
        {"question": "Eggs: 3 boxes of 2 at $1 each. Dollars?",
         "answer": "She has 3*2=<<3*2=6>>6 eggs, so she makes 6*1=<<6*1=6>>6 dollars.\n#### 6"},
        {"question": "How many legs do 2 cats have?", "answer": "Each cat has 4 legs: 2*4=<<2*4=8>>8.\n#### 8"},
    ])
    write_jsonl(openr1, [
        {"problem": "What is 5+5?", "solution": "We add: 5+5=10, so the answer is \\boxed{10}.", "answer": "10"},
        {"problem": "What is 6+6?", "solution": "<think>6+6</think><think>=12</think>\\boxed{12}", "answer": "12"},
        {"problem": "What is 2+2?", "solution": in_layout, "answer": "4"},
    ])
    result = prepare("--input", gsm8k, openr1, "--output", out, "--system-prompt", "")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    targets = [target[0]["content"] for target in pd.read_parquet(out).target]
    assert targets == [
        "<think>\nShe has 3*2=6 eggs, so she makes 6*1=6 dollars.\n</think>\n\nThe final answer is $\\boxed{6}$.",
        "<think>\nEach cat has 4 legs: 2*4=8.\n</think>\n\nThe final answer is $\\boxed{8}$.",
        "<think>\nWe add: 5+5=10, so the answer is \\boxed{10}.\n</think>\n\nThe final answer is $\\boxed{10}$.",
        "<think>\n6+6=12\n</think>\n\n\\boxed{12}",
        in_layout,
    ]
    counts = summary(result.stdout)
    assert counts["demonstrations put into the training layout"] == "2"  # the OpenR1 ones; GSM8K rows are mapped
    assert counts["demonstrations graded"] == "5"
    assert counts["demonstrations that pass (layout and relift's reward)"] == "5"
    # What prepare_train writes passes the trainer's own check with no failure allowed at all.
    assert validate_file(str(out), require_target=True, max_failing_demonstrations=0.0) == 5


FAILING = [
    {"problem": "What is 1+1?", "solution": "<think>\n1+1=2\n</think>\n\\boxed{2}", "answer": "2"},
    {"problem": "What is 1+2?", "solution": "<think>\n1+2=4\n</think>\nSo \\boxed{4}.", "answer": "3"},
    {"problem": "What is 1+3?", "solution": "1+3 is four.", "answer": "4"},
]


@pytest.mark.parametrize("mode, rows, targets", [("keep", 3, 3), ("drop", 1, 1), ("rl-only", 3, 1)])
def test_failing_demonstrations_are_counted_and_kept_dropped_or_left_to_rl(tmp_path, mode, rows, targets):
    src, out = tmp_path / "in.jsonl", tmp_path / "train.parquet"
    write_jsonl(src, FAILING)
    result = prepare("--input", src, "--output", out, "--system-prompt", "", "--failing-demos", mode)
    assert result.returncode == 0, result.stderr
    counts = summary(result.stdout)
    assert (counts["demonstrations graded"], counts["demonstrations that pass (layout and relift's reward)"],
            counts["demonstrations out of the layout"], counts["demonstrations graded wrong"]) == ("3", "1", "1", "1")
    frame = pd.read_parquet(out)
    assert len(frame) == rows and frame.target.notna().sum() == targets
    if mode == "keep":
        assert result.stderr.strip().splitlines()[-1] == (
            f"prepare_train: warning: 2 of 3 demonstrations fail relift's reward or the training layout (first: "
            f"{src}: row 1: relift's reward grades it wrong: read '4', the ground truth is '3'); --failing-demos "
            "drop or rl-only leaves them out")
        return
    rejects = [json.loads(line) for line in open(tmp_path / "train.rejects.jsonl")]
    assert [(r["row"], r["field"], r["problem"]) for r in rejects] == [
        (1, "target", "relift's reward grades it wrong: read '4', the ground truth is '3'"),
        (2, "target",
         "no `</think>`: the think block that the prompt opens is never closed (relift's reward scores 0)")]
    assert rejects[1]["record"]["solution"] == "1+3 is four."


def test_argparse_defaults_are_the_trainers(tmp_path):
    """One source of defaults: the teacher's flags, --max-prompt-length and --max-target-len read the YAML."""
    from relift.config import trainer_yaml

    spec = importlib.util.spec_from_file_location("prepare_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = vars(module.build_parser().parse_args([]))
    yaml = trainer_yaml()
    assert (args["max_prompt_length"], args["max_target_len"]) == (yaml.data.max_prompt_length,
                                                                    yaml.relift.max_target_len)
    teacher = {key: args[f"teacher_{key}"] for _, key, _, _ in module.TEACHER_FLAGS}
    assert teacher == {key: yaml.relift.teacher[key] for key in teacher}
    assert set(teacher) | {"enable", "base_url", "model", "cache", "backoff_s"} == set(yaml.relift.teacher)


def test_holdout_writes_validation_questions_that_training_never_sees(tmp_path, monkeypatch):
    src, out = tmp_path / "mine.jsonl", tmp_path / "mine.parquet"
    write_jsonl(src, [{"problem": f"What is {i}+{i}?", "solution": f"<think>\n{i}+{i}={2 * i}\n</think>\nSo "
                       f"\\boxed{{{2 * i}}}.", "answer": str(2 * i)} for i in range(10)])
    result = prepare("--input", src, "--output", out, "--holdout", 3)
    assert result.returncode == 0, result.stderr
    train, valid = pd.read_parquet(out), pd.read_parquet(tmp_path / "mine_valid.parquet")
    question = lambda frame: {prompt[-1]["content"] for prompt in frame.prompt}  # noqa: E731
    assert len(train) == 7 and len(valid) == 3 and not question(train) & question(valid)
    assert f"held out for validation ({tmp_path / 'mine_valid.parquet'})" in result.stdout
    again = prepare("--input", src, "--output", tmp_path / "again.parquet", "--holdout", 3)
    assert again.returncode == 0 and question(pd.read_parquet(tmp_path / "again_valid.parquet")) == question(valid)

    # The trainer warns when validation questions are evaluation questions (the paper's validation file),
    # not for a held-out split.
    from helpers import composed

    from relift.preflight import validation_overlap

    monkeypatch.chdir(REPO)  # the bundled benchmarks are read where the examples run
    warning = validation_overlap(composed("data.val_files=dataset/relift_valid.parquet"))
    assert warning.startswith("1318 of the 1318 validation questions (data.val_files=dataset/relift_valid.parquet) "
                              "are questions of the evaluation benchmarks (olympiad_bench 675, math 500, amc 83, "
                              "aime 30, aime25 30): the `best` model is picked on them."), warning
    assert warning.endswith("hold out training questions (dataset/prepare_train.py --holdout 500) and set "
                            "data.val_files to that file")
    assert validation_overlap(composed(f"data.val_files={tmp_path / 'mine_valid.parquet'}")) is None
    assert validation_overlap(composed("data.val_files=dataset/relift_valid.parquet", "trainer.test_freq=-1")) is None
