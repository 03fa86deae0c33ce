"""dataset/prepare_train.py as a user runs it: a subprocess on local files."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from relift.data import validate_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "dataset", "prepare_train.py")


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


def openr1_rows():
    return [
        {"problem": "What is 2+2?", "solution": "<think>\n2+2=4\n</think>\nSo \\boxed{4}.", "answer": "4", "source": "amc"},
        {"problem": "What is 3+3?", "solution": "<think>\n3+3=6\n</think>\nSo \\boxed{6}.", "answer": "", "source": "amc"},
        {"problem": "What is 2+2?", "solution": "<think>\n2+2=4\n</think>\nSo \\boxed{4}.", "answer": "4", "source": "amc"},
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
    pd.DataFrame([{"data_source": "x", "prompt": [{"role": "user", "content": "q"}], "ability": "math"}]).to_parquet(src)
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
    rows = openr1_rows()[:2] + [{"problem": "What is " + " + ".join(["1"] * 200) + "?", "solution": "\\boxed{200}", "answer": "200"}]
    write_jsonl(src, rows)
    result = prepare("--input", src, "--output", out, "--tokenizer", tiny["model"], "--system-prompt", "",
                     "--max-prompt-length", "64", "--max-target-len", "8")
    assert result.returncode == 0, result.stderr
    assert "dropped: prompt longer than --max-prompt-length" in result.stdout
    assert "demonstration longer than --max-target-len" in result.stdout
    assert len(pd.read_parquet(out)) == 2
