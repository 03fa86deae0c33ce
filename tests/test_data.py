import os
import re

import pandas as pd
import pyarrow as pa
import pytest

from relift.data import DataFileError, DataRowError, validate_file, validate_frame, write_parquet_atomic


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
