"""Digit-string tasks with worked demonstrations, in the training schema (see relift/data.py), for the
CPU demo, the bench and the tests. Pure Python: no veRL, no Ray.

    python -m relift.toy.digit_tasks --out dataset/synthetic --train-rows 1024 --val-per-type 640

Each question shows five digits and names a procedure to apply to each of them:

    copy   "Copy 3 8 1 5 2."                  -> 38152
    inc    "Add one to each digit of 3 8 1 5 2." -> 49263   (9 -> 0)
    dbl    "Double each digit of 3 8 1 5 2."     -> 66204   (last digit of 2d)

A demonstration writes the result digit by digit in the think block, then the number in `\\boxed{}`.
The procedures transfer: a model that has learnt one applies it to digit strings it never saw, and
every held-out question is a fresh string. The CPU demo and bench warm-start their tiny model on
`copy` only, so RL finds `copy` questions it sometimes solves and `inc` / `dbl` questions it never
solves (the warm-started model copies instead; an output that equals the input is never correct,
because such questions are not generated).

Writes train.parquet, val.parquet (`--val-per-type` questions per type, none of them in train),
warm_start.parquet (`copy` only, disjoint from both) and, with `--dev-per-type`, dev.parquet (the
bench's validation split for SFT, disjoint from all three), each validated and written atomically.
"""

from __future__ import annotations

import argparse
import os
import random

import pandas as pd

from relift.cli import HelpFormatter
from relift.data import validate_frame, write_parquet_atomic

SYSTEM_PROMPT = "Think step by step inside <think> </think>, then give the final answer in \\boxed{}."
DIGITS = 5
PROCEDURES = {
    "copy": ("Copy", lambda d: d),
    "inc": ("Add one to each digit of", lambda d: (d + 1) % 10),
    "dbl": ("Double each digit of", lambda d: (2 * d) % 10),
}
TYPES = tuple(PROCEDURES)
DATA_SOURCE = "digits/{}"


def make_question(kind: str, digits: tuple[int, ...]) -> tuple[str, str, str] | None:
    """(question, demonstration, answer), or None when the result is ambiguous as a number
    (leading zero) or, for a procedure other than copy, equals the input."""
    if kind not in PROCEDURES:
        raise ValueError(f"unknown type {kind!r}; expected one of {TYPES}")
    instruction, apply = PROCEDURES[kind]
    result = tuple(apply(d) for d in digits)
    if digits[0] == 0 or result[0] == 0 or (kind != "copy" and result == digits):
        return None
    answer = "".join(map(str, result))
    demonstration = f"<think>\n{' '.join(map(str, result))}\n</think>\nThe answer is \\boxed{{{answer}}}."
    return f"{instruction} {' '.join(map(str, digits))}.", demonstration, answer


def make_rows(per_type: int | None, total: int | None, types: tuple[str, ...], split: str, seed: int,
              exclude: set[tuple[str, tuple[int, ...]]]) -> pd.DataFrame:
    """`total` rows cycling through `types` (or `per_type` of each), none of whose (type, digits) is in
    `exclude`; the new keys are added to `exclude` so that later splits stay disjoint."""
    count = total if total is not None else per_type * len(types)
    rng = random.Random(f"{seed}-{split}")
    rows = []
    while len(rows) < count:
        kind = types[len(rows) % len(types)]
        digits = tuple(rng.randint(0, 9) for _ in range(DIGITS))
        made = make_question(kind, digits)
        if made is None or (kind, digits) in exclude:
            continue
        exclude.add((kind, digits))
        question, demonstration, answer = made
        rows.append(
            {
                "data_source": DATA_SOURCE.format(kind),
                "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
                "target": [{"role": "assistant", "content": demonstration}],
                "ability": "digits",
                "reward_model": {"ground_truth": answer, "style": "rule"},
                "extra_info": {"index": len(rows), "split": split, "type": kind},
            }
        )
    return pd.DataFrame(rows)


def write(frame: pd.DataFrame, path: str) -> None:
    rejected = validate_frame(frame, path, require_target=True)
    if rejected:
        raise ValueError(f"generated rows break the schema: {rejected[:3]}")
    write_parquet_atomic(frame, path)
    print(f"[digit_tasks] wrote {path}: {len(frame)} rows")


def build(out: str, train_rows: int, val_per_type: int, warm_start_rows: int, seed: int = 0,
          types: tuple[str, ...] = TYPES, warm_start_types: tuple[str, ...] = ("copy",),
          dev_per_type: int = 0) -> dict[str, str]:
    """Write the splits under `out`; returns their paths. Validation is drawn first, so the held-out
    questions do not depend on how much training data is asked for. With `dev_per_type`, also dev.parquet:
    questions of the training distribution for choosing when SFT stops, drawn last so that the other
    splits are the same with or without it."""
    seen: set[tuple[str, tuple[int, ...]]] = set()
    names = ("val", "train", "warm_start", "dev") if dev_per_type else ("val", "train", "warm_start")
    paths = {name: os.path.join(out, f"{name}.parquet") for name in names}
    write(make_rows(val_per_type, None, types, "test", seed, seen), paths["val"])
    write(make_rows(None, train_rows, types, "train", seed, seen), paths["train"])
    write(make_rows(None, warm_start_rows, warm_start_types, "warm_start", seed, seen), paths["warm_start"])
    if dev_per_type:
        write(make_rows(dev_per_type, None, types, "dev", seed, seen), paths["dev"])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="dataset/synthetic")
    parser.add_argument("--train-rows", type=int, default=1024)
    parser.add_argument("--val-per-type", type=int, default=640)
    parser.add_argument("--warm-start-rows", type=int, default=4096)
    parser.add_argument("--dev-per-type", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.out, args.train_rows, args.val_per_type, args.warm_start_rows, args.seed,
          dev_per_type=args.dev_per_type)


if __name__ == "__main__":
    main()
