"""Grading speed under degenerate outputs, and grading of ordinary answers, in one run.

    python -m bench.grading [--out bench/results/grading.json]

An RL policy that collapses can answer every question with pathological text; at the paper's sizes a
step grades 1,024 responses. Measured here, the way veRL calls the reward (`compute_score` from a pool of
threads, as its reward loop's `run_in_executor` does):

- each kind of degenerate output alone, after the grader processes are up (target: <= 1 s each);
- 1,024 degenerate responses, the kinds in turn (target: <= 60 s on 2 cores);
- ordinary answers: the ground truth of every row of the bundled benchmarks, boxed after `</think>`,
  must grade correct (GPQA / ARC-c rows as `ANSWER: X`), and a wrong one must not.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import time

import pandas as pd

from relift.data import write_text_atomic
from relift.reward import compute_score, grade

# As many threads as veRL's reward loop gets from asyncio's default executor.
THREADS = min(32, (os.cpu_count() or 1) + 4)
DATASETS = ["math_eval", "relift_valid", "gpqa_diamond", "arc_c"]
DATASET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dataset")

DEGENERATE = {
    "nested braces": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "100k-digit number": "\\boxed{" + "7" * 100_000 + "}",
    "180k chars of \\boxed{x}": "\\boxed{x}" * 20_000,
    "integral tower": "\\boxed{" + "\\int " * 2000 + "x \\, dx}",
    "sum tower": "\\boxed{" + "\\sum_{k=1}^{\\infty} " * 2000 + "k}",
    "power tower factorial": "\\boxed{10^{10^{10^{10}}}!}",
    "nested fractions": "\\boxed{" + "\\frac{1}{1+" * 3000 + "1" + "}" * 6000 + "}",
    "huge power": "\\boxed{9^{9999999999}}",
    "long unboxed text": "the answer is " + "1+" * 60_000 + "1",
    "huge factorial": "\\boxed{99999999!}",
    # Within the rejection bounds: these reach math-verify and its time budget.
    "short integral tower": "\\boxed{" + "\\int " * 60 + "x \\, dx}",
    "short sum tower": "\\boxed{" + "\\sum_{k=1}^{\\infty} " * 20 + "k}",
    "499-digit number": "\\boxed{" + "7" * 499 + "}",
    "largest allowed factorial": "\\boxed{100000!}",
    "largest allowed power": "\\boxed{2^{1000000}}",
    "six nested fractions": "\\boxed{" + "\\frac{1}{1+" * 6 + "x" + "}" * 12 + "}",
}


def response(payload: str) -> str:
    return "some reasoning </think> " + payload


def grade_timed(payload: str, ground_truth: str = "42"):
    """(seconds, relift.reward.Grade), by the rule compute_score applies."""
    start = time.perf_counter()
    result = grade("math", response(payload), ground_truth)
    return time.perf_counter() - start, result


def distinct(payload: str, i: int) -> str:
    """The payload with a different number in its graded part, so that no parse comes from math-verify's
    cache: a policy's degenerate outputs are alike, not identical."""
    head, boxed, tail = payload.rpartition("\\boxed{")
    return f"{head}{boxed}{i}+{tail}" if boxed else f"{payload}+{i}"


def ordinary_answers() -> dict:
    """Every bundled benchmark's ground truths, graded as a model would write them."""
    counts = {}
    for name in DATASETS:
        frame = pd.read_parquet(os.path.join(DATASET_DIR, f"{name}.parquet"))
        rows = list(zip(frame.data_source, (rm["ground_truth"] for rm in frame.reward_model), strict=True))
        right = wrong_rejected = 0
        misses = []
        start = time.perf_counter()
        for row, (source, truth) in enumerate(rows):
            choice = name in ("gpqa_diamond", "arc_c")
            answer = f"ANSWER: {truth}" if choice else f"The answer is \\boxed{{{truth}}}."
            if compute_score(source, response(answer), truth)["score"] == 1.0:
                right += 1
            else:
                misses.append({"row": row, "ground_truth": truth})
            wrong = "ANSWER: Z" if choice else "\\boxed{\\text{no answer}}"
            wrong_rejected += compute_score(source, response(wrong), truth)["score"] == 0.0
        counts[name] = {"rows": len(rows), "graded_correct": right, "wrong_rejected": wrong_rejected,
                        "seconds": round(time.perf_counter() - start, 1), "not_graded_correct": misses}
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results/grading.json")
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()

    grade_timed("\\boxed{1}")  # start the grader processes
    kinds = {}
    for kind, payload in DEGENERATE.items():
        seconds, result = grade_timed(payload)
        kinds[kind] = {"seconds": round(seconds, 3), "correct": result.correct, "status": result.status}
        print(f"[grading] {kind:<26} {seconds:6.3f} s  {result.status}", flush=True)

    payloads = list(DEGENERATE.values())
    batch = [distinct(payloads[i % len(payloads)], i) for i in range(args.batch)]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as threads:
        results = list(threads.map(lambda payload: compute_score("math", response(payload), "42"), batch))
    batch_seconds = time.perf_counter() - start
    print(f"[grading] {args.batch} degenerate responses: {batch_seconds:.1f} s", flush=True)

    # The kinds that reach math-verify, each alone: what a step would cost if a policy wrote only that.
    admitted = {}
    for kind, payload in DEGENERATE.items():
        if kinds[kind]["status"] == "rejected":
            continue
        sample = [distinct(payload, args.batch + i) for i in range(32)]
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as threads:
            list(threads.map(lambda text: compute_score("math", response(text), "42"), sample))
        projected = (time.perf_counter() - start) / len(sample) * args.batch
        admitted[kind] = {"projected_s_per_batch": round(projected, 1)}
        print(f"[grading] {args.batch} x {kind}: {projected:.0f} s (projected from 32)", flush=True)

    ordinary = ordinary_answers()
    for name, counts in ordinary.items():
        print(f"[grading] {name}: {counts['graded_correct']}/{counts['rows']} ground truths graded correct, "
              f"{counts['wrong_rejected']}/{counts['rows']} wrong answers rejected ({counts['seconds']} s)", flush=True)

    worst = max(kinds.values(), key=lambda k: k["seconds"])["seconds"]
    report = {
        "cpu_count": os.cpu_count(),
        "kinds": kinds,
        "batch": {"responses": args.batch, "seconds": round(batch_seconds, 1),
                  "scored_zero": sum(r["score"] == 0.0 for r in results)},
        "admitted_kinds_alone": admitted,
        "ordinary": ordinary,
        "targets": {
            "every kind <= 1 s": {"measured_s": worst, "met": worst <= 1.0},
            f"{args.batch} degenerate <= 60 s": {"measured_s": round(batch_seconds, 1), "met": batch_seconds <= 60},
            "ordinary answers grade as before": {
                "met": all(c["graded_correct"] == c["rows"] == c["wrong_rejected"] for c in ordinary.values())},
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    for target, value in report["targets"].items():
        print(f"[grading] target {target}: {'met' if value['met'] else 'MISSED'} {value.get('measured_s', '')}")


if __name__ == "__main__":
    main()
