"""The training-data schema and its validation, shared by `dataset/prepare_train.py` and the trainer.

A training row (veRL's RL schema plus ReLIFT's demonstration):

    data_source   str
    prompt        list of {role: str, content: str}: system (optional) + user question
    target        list with one {role: "assistant", content: str}, or a str: the worked demonstration
    ability       str
    reward_model  {ground_truth: str, style: str}
    extra_info    {index: int, split: str}

Every error names the file, the row and the field. Pure Python + pandas/pyarrow: no veRL, no Ray.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model")
ROLES = {"system", "user", "assistant"}


class DataFileError(ValueError):
    """A whole file cannot be used (unreadable, empty, missing a column)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


class DataRowError(ValueError):
    """One row breaks the schema."""

    def __init__(self, path: str, row: int, field: str, problem: str):
        super().__init__(f"{path}: row {row}: field '{field}': {problem}")
        self.path, self.row, self.field, self.problem = path, row, field, problem


def as_list(value):
    """pyarrow hands list columns to pandas as numpy arrays."""
    if isinstance(value, np.ndarray):
        return list(value)
    return value


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _check_text(value) -> str | None:
    """Returns the problem with a text value, or None."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value.strip():
        return "is empty"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"is not valid UTF-8 text ({error.reason} at character {error.start})"
    return None


def _check_messages(messages, field: str) -> tuple[str, str] | None:
    """(field path, problem) for a chat-message list, or None."""
    messages = as_list(messages)
    if not isinstance(messages, list):
        return field, f"expected a list of {{role, content}} messages, got {type(messages).__name__}"
    if not messages:
        return field, "is an empty message list"
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            return f"{field}[{i}]", f"expected a {{role, content}} message, got {type(message).__name__}"
        if message.get("role") not in ROLES:
            return f"{field}[{i}].role", f"expected one of {sorted(ROLES)}, got {message.get('role')!r}"
        problem = _check_text(message.get("content"))
        if problem:
            return f"{field}[{i}].content", problem
    return None


def row_problem(row: Mapping, *, require_target: bool) -> tuple[str, str] | None:
    """The first (field, problem) of a row, or None when the row is valid."""
    problem = _check_text(row.get("data_source"))
    if problem:
        return "data_source", problem
    found = _check_messages(row.get("prompt"), "prompt")
    if found:
        return found
    prompt = as_list(row["prompt"])
    if not any(m["role"] == "user" for m in prompt):
        return "prompt", "has no user message (the question)"
    problem = _check_text(row.get("ability"))
    if problem:
        return "ability", problem
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping):
        return "reward_model", f"expected {{ground_truth, style}}, got {type(reward_model).__name__}"
    if is_missing(reward_model.get("ground_truth")):
        return "reward_model.ground_truth", "is missing"
    problem = _check_text(reward_model.get("ground_truth"))
    if problem:
        return "reward_model.ground_truth", problem
    extra_info = row.get("extra_info")
    if not is_missing(extra_info) and not isinstance(extra_info, Mapping):
        return "extra_info", f"expected a mapping, got {type(extra_info).__name__}"
    target = as_list(row.get("target"))
    if is_missing(target):
        return ("target", "is missing (a demonstration is required)") if require_target else None
    if isinstance(target, str):
        problem = _check_text(target)
        return ("target", problem) if problem else None
    found = _check_messages(target, "target")
    if found:
        return found
    if not any(m["role"] == "assistant" for m in target):
        return "target", "has no assistant message (the demonstration)"
    return None


def read_table(path: str) -> pd.DataFrame:
    """Read a parquet, jsonl or json file, with a clear error for what cannot be read."""
    if not os.path.exists(path):
        raise DataFileError(path, "file not found")
    try:
        if path.endswith(".parquet"):
            frame = pd.read_parquet(path)
        elif path.endswith(".jsonl"):
            # dtype=False: keep "42" a string; pandas would otherwise turn numeric-looking text into numbers.
            frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
        elif path.endswith(".json"):
            frame = pd.read_json(path, dtype=False, convert_dates=False)
        else:
            raise DataFileError(path, "unsupported file type (expected .parquet, .jsonl or .json)")
    except DataFileError:
        raise
    except Exception as error:
        kind = path.rsplit(".", 1)[-1]
        raise DataFileError(path, f"cannot be read as {kind}: {type(error).__name__}: {error}") from None
    if len(frame) == 0:
        raise DataFileError(path, "has no rows")
    return frame


@dataclass
class Rejected:
    row: int
    field: str
    problem: str


def validate_frame(frame: pd.DataFrame, path: str, *, require_target: bool) -> list[Rejected]:
    """Check every row. Raises DataFileError for a missing column; returns the rows that break the schema."""
    needed = REQUIRED_COLUMNS + (("target",) if require_target else ())
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; columns present: {list(frame.columns)}")
    rejected = []
    for index, row in enumerate(_records(frame)):
        found = row_problem(row, require_target=require_target)
        if found:
            rejected.append(Rejected(index, *found))
    return rejected


def _records(frame: pd.DataFrame) -> Iterable[dict]:
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(columns, values, strict=True))


def validate_file(path: str, *, require_target: bool) -> int:
    """Raise on the first bad row of a training file; return its number of rows."""
    frame = read_table(path)
    rejected = validate_frame(frame, path, require_target=require_target)
    if rejected:
        first = rejected[0]
        more = f" ({len(rejected) - 1} more bad rows)" if len(rejected) > 1 else ""
        raise DataRowError(path, first.row, first.field, first.problem + more)
    return len(frame)


def write_atomic(path: str, write) -> None:
    """Call `write(tmp_path)`, then rename onto `path`: a failed write never clobbers an existing file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet_atomic(frame: pd.DataFrame, path: str) -> None:
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text_atomic(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    write_atomic(path, write)
