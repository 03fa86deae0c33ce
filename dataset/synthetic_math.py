"""Synthetic arithmetic questions with worked demonstrations, in the training schema (see relift/data.py).

    python dataset/synthetic_math.py --out dataset/synthetic --train-rows 256 --val-rows 32

Three one-step skills for a tiny model: `add` (one digit + one digit), `sub` (teens minus one digit)
and `mul` (one digit times one digit). The CPU demo warm-starts its tiny model on `add`
only, so RL finds questions the model sometimes solves and ReLIFT finds questions it never solves.
Writes train.parquet, val.parquet and warm_start.parquet (add-only), each validated, atomically.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from relift.data import validate_frame, write_parquet_atomic  # noqa: E402

SYSTEM_PROMPT = "Think step by step inside <think> </think>, then give the final answer in \\boxed{}."
SKILLS = ("add", "sub", "mul")


def make_question(skill: str, rng: random.Random) -> tuple[str, str, str]:
    """(question, demonstration, answer) for one skill."""
    if skill == "add":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        answer, op = a + b, "+"
    elif skill == "sub":
        a, b = rng.randint(10, 19), rng.randint(1, 9)
        answer, op = a - b, "-"
    elif skill == "mul":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        answer, op = a * b, "*"
    else:
        raise ValueError(f"unknown skill {skill!r}; expected one of {SKILLS}")
    demonstration = f"<think>\n{a} {op} {b} = {answer}\n</think>\nThe answer is \\boxed{{{answer}}}."
    return f"What is {a} {op} {b}?", demonstration, str(answer)


def make_rows(n: int, skills: tuple[str, ...], split: str, seed: int) -> pd.DataFrame:
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for index in range(n):
        skill = skills[index % len(skills)]
        question, demonstration, answer = make_question(skill, rng)
        rows.append(
            {
                "data_source": f"synthetic_math/{skill}",
                "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
                "target": [{"role": "assistant", "content": demonstration}],
                "ability": "math",
                "reward_model": {"ground_truth": answer, "style": "rule"},
                "extra_info": {"index": index, "split": split},
            }
        )
    return pd.DataFrame(rows)


def write(frame: pd.DataFrame, path: str) -> None:
    rejected = validate_frame(frame, path, require_target=True)
    if rejected:
        raise ValueError(f"generated rows break the schema: {rejected[:3]}")
    write_parquet_atomic(frame, path)
    print(f"[synthetic_math] wrote {path}: {len(frame)} rows")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="dataset/synthetic")
    parser.add_argument("--train-rows", type=int, default=256)
    parser.add_argument("--val-rows", type=int, default=32)
    parser.add_argument("--warm-start-rows", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write(make_rows(args.train_rows, SKILLS, "train", args.seed), os.path.join(args.out, "train.parquet"))
    write(make_rows(args.val_rows, SKILLS, "test", args.seed), os.path.join(args.out, "val.parquet"))
    write(make_rows(args.warm_start_rows, ("add",), "warm_start", args.seed), os.path.join(args.out, "warm_start.parquet"))


if __name__ == "__main__":
    main()
