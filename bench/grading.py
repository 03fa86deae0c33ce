r"""Grading speed under degenerate outputs, and grading of ordinary answers, in one run.

    python -m bench.grading [--out bench/results/grading.json]

An RL policy that collapses can answer every question with pathological text; at the paper's sizes a
step grades 1,024 responses. Measured here, the way veRL calls the reward (`compute_score` from a pool of
threads, as its reward loop's `run_in_executor` does):

- each kind of degenerate output alone, after the grader processes are up (target: <= 1 s each);
- 1,024 degenerate responses, the kinds in turn (target: <= 60 s on 2 cores);
- ordinary answers: the ground truth of every row of the bundled benchmarks after `</think>`, in each form a
  model writes it in, must grade correct, and a wrong one must not: math boxed verbatim and as a model writes it
  (no `$`, `\%`), a percentage also as its number and its fraction, a 4+ digit integer also with thousands
  separators outside `\boxed`; an option (GPQA, ARC-c) in each form relift accepts, boxed with its text too,
  and English that begins with a capital letter, which must not be read as an option.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import time
from decimal import Decimal

import pandas as pd

from relift.cli import HelpFormatter
from relift.data import write_text_atomic
from relift.reward import choice_label, compute_score, grade

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


def model_written(truth: str) -> str:
    r"""A math ground truth as a model writes it in `\boxed{}`: no `$` delimiters (nor a period after the last one),
    `%` as `\%`."""
    return re.sub(r"(?<!\\)%", r"\\%", re.sub(r"(?<!\\)\$", "", re.sub(r"\$\.\s*$", "$", truth))).strip()


def math_forms(truth: str) -> tuple[dict[str, str], dict[str, str]]:
    r"""({form: a right answer}, {form: a wrong answer}) for a math ground truth: boxed verbatim and as a model
    writes it; a percentage also as its number and its fraction; an integer of 4+ digits also with thousands
    separators outside `\boxed`."""
    written = model_written(truth)
    right = {"boxed verbatim": f"The answer is \\boxed{{{truth}}}.",
             "boxed as a model writes it": f"\\boxed{{{written}}}"}
    wrong = {"boxed verbatim": "\\boxed{\\text{no answer}}"}
    percent = re.fullmatch(r"(\d+(?:\.\d+)?)\s*\\%", written)
    if percent:
        for n, answers in ((Decimal(percent.group(1)), right), (Decimal(percent.group(1)) + 1, wrong)):
            answers.update({"percent as a number": f"\\boxed{{{n}}}", "percent as a fraction": f"\\boxed{{{n / 100}}}",
                            "percent with \\%": f"\\boxed{{{n}\\%}}"})
    if re.fullmatch(r"\d{4,}|\d{1,3}(?:,\d{3})+", written):
        for separator in ("{,}", "\\,", " "):
            right[f"separator {separator!r} unboxed"], wrong[f"separator {separator!r} unboxed"] = (
                f"The answer is ${int(written.replace(',', '')) + k:,}$.".replace(",", separator) for k in (0, 1))
    return right, wrong


def option_texts(prompt: str) -> dict[str, str]:
    """{label: option text} from a multiple-choice prompt's `C) text` lines."""
    return dict(re.findall(r"(?m)^([A-J1-9])\) ?(.+)$", prompt))


# The option forms relift accepts (relift.reward's module docstring); {label} is the option label.
CHOICE_FORMS = {
    "ANSWER: X": "ANSWER: {label}",
    "**Answer:** X": "**Answer:** {label}",
    "\\boxed{X}": "The final answer is $\\boxed{{{label}}}$.",
    "the answer is (X)": "Therefore, the answer is ({label}).",
    "the correct choice is **X**": "So the correct choice is **{label}**.",
    "Option X": "Option {label}",
    "bare X": "{label}",
}
# English that begins with a capital letter: never an option.
NOT_AN_OPTION = [
    "Answer: Actually I am not sure which option is right.",
    "Answer: A lot depends on the assumptions.",
    "The answer is all of them.",
    "I think none of these is right.",
    "Based on this, I cannot decide.",
    "ANSWER: I don't know",
]


def choice_forms(truth: str, prompt: str) -> tuple[dict[str, str], dict[str, str]]:
    """({form: a right answer}, {form: a wrong answer}) for a multiple-choice row: each accepted form with the
    right option and with the next one; the option boxed with its text; English that must not be read as an option."""
    texts = option_texts(prompt)
    labels = sorted(texts)
    other = labels[(labels.index(truth) + 1) % len(labels)]
    right = {form: text.format(label=truth) for form, text in CHOICE_FORMS.items()}
    wrong = {form: text.format(label=other) for form, text in CHOICE_FORMS.items()}
    right["\\boxed{X) option text}"] = f"\\boxed{{{truth}) {texts[truth]}}}"
    wrong["\\boxed{X) option text}"] = f"\\boxed{{{other}) {texts[other]}}}"
    wrong.update({f"English: {text[:24]}...": text for text in NOT_AN_OPTION})
    return right, wrong


def ordinary_answers() -> dict:
    """Every bundled benchmark's ground truths, graded in each form a model writes them in; wrong ones too."""
    counts = {}
    for name in DATASETS:
        frame = pd.read_parquet(os.path.join(DATASET_DIR, f"{name}.parquet"))
        rows = list(zip(frame.data_source, (rm["ground_truth"] for rm in frame.reward_model),
                        (prompt[-1]["content"] for prompt in frame.prompt), strict=True))
        right_counts: dict[str, dict] = {}
        wrong_counts: dict[str, dict] = {}
        start = time.perf_counter()
        for row, (source, truth, prompt) in enumerate(rows):
            right, wrong = choice_forms(truth, prompt) if choice_label(source, truth) else math_forms(truth)
            for answers, tally, expected in ((right, right_counts, 1.0), (wrong, wrong_counts, 0.0)):
                for form, answer in answers.items():
                    entry = tally.setdefault(form, {"answers": 0, "as_expected": 0, "not_as_expected": []})
                    entry["answers"] += 1
                    result = compute_score(source, response(answer), truth)
                    if result["score"] == expected:
                        entry["as_expected"] += 1
                    else:  # timed_out: over the grader's budget (the machine's load), not a misreading
                        entry["not_as_expected"].append({"row": row, "ground_truth": truth, "answer": answer,
                                                         "timed_out": bool(result["timed_out"])})
        counts[name] = {"rows": len(rows), "seconds": round(time.perf_counter() - start, 1),
                        "right_graded_correct": right_counts, "wrong_graded_wrong": wrong_counts}
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
        print(f"[grading] {name}: {counts['rows']} rows ({counts['seconds']} s)", flush=True)
        for kind, tally in (("right", counts["right_graded_correct"]), ("wrong", counts["wrong_graded_wrong"])):
            for form, entry in tally.items():
                print(f"[grading]   {kind} {form}: {entry['as_expected']}/{entry['answers']} graded "
                      f"{'correct' if kind == 'right' else 'wrong'}", flush=True)

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
            "every ground truth right in every form, every wrong answer wrong": {
                "met": all(entry["as_expected"] == entry["answers"] for counts in ordinary.values()
                           for tally in (counts["right_graded_correct"], counts["wrong_graded_wrong"])
                           for entry in tally.values())},
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    for target, value in report["targets"].items():
        print(f"[grading] target {target}: {'met' if value['met'] else 'MISSED'} {value.get('measured_s', '')}")


if __name__ == "__main__":
    main()
