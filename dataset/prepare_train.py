"""Prepare ReLIFT's training parquet: veRL's RL schema plus the demonstration (`target`).

    cd dataset && python prepare_train.py                       # the reference's source, from the HF hub
    python dataset/prepare_train.py --input my.jsonl --output dataset/mine.parquet \\
        --tokenizer /models/Qwen2.5-Math-7B-16k-think --max-prompt-length 1024 --max-target-len 8192
    python dataset/prepare_train.py --input my.jsonl --output dataset/mine.parquet --holdout 500
                                                                # + dataset/mine_valid.parquet, 500 questions

Sources: the Hugging Face dataset `Elliott/Openr1-Math-46k-8192` (LUFFY's OpenR1 subset, already in the
schema) by default, or local parquet / jsonl / json files (`--input`, several allowed) in the schema or
in a common shape that is mapped to it:
- `problem` + `solution` [+ `answer`] (OpenR1 / MATH style): the solution is the demonstration; without
  `answer`, the last `\\boxed{...}` of the solution is the ground truth;
- `question` + `answer` with a `#### <answer>` line (GSM8K style): the text before `####`, without its
  calculator annotations (`<<3*2=6>>`), is the demonstration, the text after it the ground truth.
Every demonstration is put into the layout the trainer trains (relift.layout.normalise_demonstration: one
`<think>` ... `</think>` block, then an answer with a final `\\boxed{}`; one already in it is kept as it
is) and graded by relift's reward against the row's ground truth; the summary counts those that fail, and
`--failing-demos` keeps them (the default, with a warning), drops them or keeps their rows for RL only.
Rows without a demonstration can get one from a teacher model (`--teacher-endpoint URL --teacher-model
NAME`, any OpenAI-compatible server; relift/teacher.py): only replies that relift's reward grades correct
against the row's answer are kept, answers are cached (`--teacher-cache`, shared with training's
`relift.teacher.cache`), and rows left without one are dropped or kept for RL only (`--without-demo`).
The teacher's defaults, `--max-prompt-length` and `--max-target-len` are the trainer's
(relift/config/relift_trainer.yaml). Every output row is validated (relift/data.py, the same check the
trainer runs before Ray starts). A bad row stops the run with its file, row and field, or with
`--skip-bad` goes to a rejects file. The output is written atomically: a failed run never clobbers an
existing file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed

import pandas as pd

from relift.cli import HelpFormatter
from relift.config import trainer_yaml
from relift.data import (
    DataFileError,
    DataRowError,
    as_list,
    grade_demonstration,
    is_missing,
    read_table,
    row_problem,
    write_parquet_atomic,
    write_text_atomic,
)
from relift.grader import default_processes
from relift.layout import last_boxed, layout_problem, normalise_demonstration
from relift.sft import demonstration_text
from relift.teacher import TeacherUnavailable, config_from

HF_DATASET = "Elliott/Openr1-Math-46k-8192"
# The trainer's defaults: the teacher's and the length bounds below come from here, not from this file.
DEFAULTS = trainer_yaml()
# --teacher-<flag>: the relift.teacher key it sets (whose default and meaning are the YAML's), its type, help.
TEACHER_FLAGS = (
    ("api-key-env", "api_key_env", str, "environment variable with the key"),
    ("concurrency", "concurrency", int, "requests in flight"),
    ("attempts", "attempts", int, "replies asked per question until one verifies"),
    ("max-tokens", "max_tokens", int, "tokens per reply"),
    ("max-tokens-param", "max_tokens_param", str, "the request field that carries --teacher-max-tokens: "
     "max_completion_tokens (OpenAI, vLLM, SGLang) or max_tokens"),
    ("temperature", "temperature", float, "sampling temperature"),
    ("timeout", "timeout_s", float, "seconds per request"),
    ("retries", "max_retries", int, "retries on 408, 409, 429, 5xx, timeouts, dropped connections"),
    ("budget", "request_budget", int, "at most this many HTTP requests"),
)
# GSM8K's calculator annotations, `<<3*2=6>>`: calls to its calculator, not part of the reasoning.
CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")

# The reference's system prompt (LUFFY / ReLIFT training and evaluation rows), verbatim.
SYSTEM_PROMPT = (
    "Your task is to follow a systematic, thorough reasoning process before providing the final solution. "
    "This involves analyzing, summarizing, exploring, reassessing, and refining your thought process through "
    "multiple iterations. Structure your response into two sections: Thought and Solution. In the Thought "
    'section, present your reasoning using the format: "<think>\n {thoughts} </think>\n". Each thought should '
    "include detailed analysis, brainstorming, verification, and refinement of ideas. After \"</think>\n,\" in "
    "the Solution section, provide the final, logical, and accurate answer, clearly derived from the "
    "exploration in the Thought section. If applicable, include the answer in \\boxed{} for closed-form "
    "results like multiple choices or mathematical solutions."
)


class SourceUnavailable(RuntimeError):
    pass


def to_schema(record: dict, index: int, source: str, system_prompt: str) -> dict:
    """Map one input record to the training schema (validation happens afterwards)."""
    if "prompt" in record and "reward_model" in record:
        return record
    if "problem" in record:
        question, demonstration = record.get("problem"), record.get("solution")
        answer = record.get("answer")
        if (is_missing(answer) or answer == "") and isinstance(demonstration, str):
            answer = last_boxed(demonstration)
    elif "question" in record and "answer" in record:
        question, demonstration, answer = record["question"], record["answer"], None
        if isinstance(demonstration, str) and "####" in demonstration:
            reasoning, answer = (part.strip() for part in demonstration.rsplit("####", 1))
            demonstration = normalise_demonstration(CALCULATOR_ANNOTATION.sub("", reasoning), final_answer=answer)
    else:
        raise DataRowError(source, index, "*", f"unrecognised row shape (columns: {sorted(record)}); expected the "
                           "training schema, problem/solution[/answer] or question/answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)  # a mapped source may store numeric answers as numbers
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    prompt = system + [{"role": "user", "content": question}]
    return {
        "data_source": next(
            (record[k] for k in ("data_source", "source") if not is_missing(record.get(k)) and record[k] != ""),
            os.path.basename(source),
        ),
        "prompt": prompt,
        "target": None if is_missing(demonstration) else [{"role": "assistant", "content": demonstration}],
        "ability": "math",
        "reward_model": {"ground_truth": None if is_missing(answer) else answer, "style": "rule"},
        "extra_info": {"index": index, "split": "train"},
    }


def load_hub(name: str) -> tuple[str, pd.DataFrame]:
    try:
        import datasets

        return f"hf://{name}", datasets.load_dataset(name, split="train").to_pandas()
    except Exception as error:
        raise SourceUnavailable(
            f"cannot load the Hugging Face dataset {name} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}).\n"
            "Without access to the hub, pass a local copy instead, e.g.\n"
            "  python dataset/prepare_train.py --input /path/to/openr1.parquet --output dataset/openr1.parquet"
        ) from None


def _canonical(value):
    if hasattr(value, "tolist"):
        return _canonical(value.tolist())
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def in_layout(row: dict) -> bool:
    """Put the row's demonstration into the training layout unless it is in it; True when it was rewritten."""
    text = demonstration_text(as_list(row.get("target")))
    if text is None or layout_problem(text) is None:
        return False
    rewritten = normalise_demonstration(text)
    if rewritten is None:  # no answer to box: it stays as it is, and fails the check below
        return False
    row["target"] = [{"role": "assistant", "content": rewritten}]
    return True


def prepare(args) -> dict:
    sources = [(path, read_table(path)) for path in args.input] if args.input else [load_hub(args.hf_dataset)]
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

    counts: Counter = Counter()
    kept, rejects, seen = [], [], set()
    for source, frame in sources:
        for index, record in enumerate(frame.to_dict("records")):
            counts["read"] += 1
            record = _canonical(record)
            try:
                row = to_schema(record, index, source, args.system_prompt)
            except DataRowError as error:
                found = (error.field, error.problem)
            else:
                found = row_problem(row, require_target=not (args.allow_missing_target or args.teacher_endpoint))
            if found:
                field, problem = found
                if not args.skip_bad:
                    raise DataRowError(source, index, field, problem)
                counts[f"rejected: {field}"] += 1
                rejects.append({"file": source, "row": index, "field": field, "problem": problem, "record": record})
                continue
            if in_layout(row):
                counts["demonstrations put into the training layout"] += 1
            key = json.dumps([row["prompt"], row["reward_model"], row.get("target")], sort_keys=True, default=str)
            if key in seen:
                counts["dropped: exact duplicate"] += 1
                continue
            seen.add(key)
            if tokenizer is not None:
                rendered_prompt = tokenizer.apply_chat_template(as_list(row["prompt"]), add_generation_prompt=True,
                                                                tokenize=False)
                if len(tokenizer.encode(rendered_prompt, add_special_tokens=False)) > args.max_prompt_length:
                    counts["dropped: prompt longer than --max-prompt-length"] += 1
                    continue
                text = demonstration_text(as_list(row.get("target"))) or ""
                # The trainer's rule (relift.sft.build_sft_batch): the EOS counts against the bound.
                if len(tokenizer.encode(text, add_special_tokens=False)) >= args.max_target_len:
                    counts["kept: demonstration longer than --max-target-len (will be truncated)"] += 1
            kept.append((row, {"file": source, "row": index, "record": record}))

    if args.seed is not None or args.holdout:
        seed = 0 if args.seed is None else args.seed
        kept = [kept[i] for i in pd.Series(range(len(kept))).sample(frac=1.0, random_state=seed)]
    holdout, kept = [row for row, _ in kept[: args.holdout]], kept[args.holdout :]
    if args.max_rows is not None:
        kept = kept[: args.max_rows]
    kept = check(args, kept, rejects, counts)
    rows = [row for row, _ in kept]
    if args.teacher_endpoint:
        rows = teach(args, rows, tokenizer, counts)
    if not rows:
        why = ", ".join(f"{key} {value}" for key, value in counts.items()
                        if key.startswith(("rejected", "dropped", "teacher: failed")))
        raise DataFileError(args.output, f"no valid rows to write ({why or 'none left'})")
    for i, row in enumerate(rows):
        row["extra_info"] = {**(row.get("extra_info") or {}), "index": i}
    write_parquet_atomic(pd.DataFrame(rows), args.output)
    counts["written"] = len(rows)
    if holdout:
        holdout_path = holdout_output(args)
        write_parquet_atomic(pd.DataFrame(holdout), holdout_path)
        counts[f"held out for validation ({holdout_path})"] = len(holdout)
    if rejects:
        rejects_path = args.rejects or os.path.splitext(args.output)[0] + ".rejects.jsonl"
        write_text_atomic(rejects_path, "".join(json.dumps(r, default=str) + "\n" for r in rejects))
        counts["rejects file"] = rejects_path
    return dict(counts)


def holdout_output(args) -> str:
    return args.holdout_output or os.path.splitext(args.output)[0] + "_valid.parquet"


def verdict(row: dict) -> tuple[bool | None, str | None]:
    """(passes, why not) for a row's demonstration: out of the training layout fails, else relift's reward
    decides (relift.data.grade_demonstration; None: the grader could not tell in its time budget)."""
    text = demonstration_text(as_list(row["target"]))
    problem = layout_problem(text)
    if problem:
        return False, problem
    return grade_demonstration(row["data_source"], text, str(row["reward_model"]["ground_truth"]))


def check(args, kept: list[tuple[dict, dict]], rejects: list[dict], counts: Counter) -> list[tuple[dict, dict]]:
    """Grade every demonstration (`verdict`, on as many threads as grader processes); those that fail are
    kept, dropped or kept for RL only without their target (--failing-demos), the last two going to the
    rejects file. One the grader could not tell is kept and counted."""
    from tqdm import tqdm

    taught = [(row, origin) for row, origin in kept if demonstration_text(as_list(row.get("target"))) is not None]
    with ThreadPoolExecutor(default_processes()) as pool:
        verdicts = list(tqdm(pool.map(lambda item: verdict(item[0]), taught), total=len(taught),
                             desc="grading demonstrations", unit="row", file=sys.stderr, disable=not taught))
    failing = [(row, origin, problem) for (row, origin), (passes, problem) in zip(taught, verdicts, strict=True)
               if passes is False]
    off_layout = sum(layout_problem(demonstration_text(as_list(row["target"]))) is not None for row, _, _ in failing)
    counts["demonstrations graded"] = len(taught)
    counts["demonstrations that pass (layout and relift's reward)"] = sum(passes is True for passes, _ in verdicts)
    counts["demonstrations out of the layout"] = off_layout
    counts["demonstrations graded wrong"] = len(failing) - off_layout
    counts["demonstrations not graded in the grader's time (kept)"] = sum(passes is None for passes, _ in verdicts)
    if not failing:
        return kept
    first = failing[0]
    first_line = f"{first[1]['file']}: row {first[1]['row']}: {first[2]}"
    if args.failing_demos == "keep":
        print(f"prepare_train: warning: {len(failing)} of {len(taught)} demonstrations fail relift's reward or the "
              f"training layout (first: {first_line}); --failing-demos drop or rl-only leaves them out",
              file=sys.stderr)
        return kept
    for row, origin, problem in failing:
        rejects.append({**origin, "field": "target", "problem": problem})
    if args.failing_demos == "rl-only":
        for row, _, _ in failing:
            row["target"] = None
        counts["kept for RL only: failing demonstration (--failing-demos rl-only)"] = len(failing)
        return kept
    counts["dropped: failing demonstration (--failing-demos drop)"] = len(failing)
    dropped = {id(row) for row, _, _ in failing}
    return [(row, origin) for row, origin in kept if id(row) not in dropped]


def teach(args, rows: list[dict], tokenizer, counts: Counter) -> list[dict]:
    """Fill missing demonstrations from the teacher (relift.teacher); rows left without one are kept for
    RL only or dropped (--without-demo). A refusal of the server stops at once, with its message."""
    from tqdm import tqdm

    from relift.teacher import Teacher, preflight, summary_counts

    config = config_from(
        DEFAULTS.relift.teacher, base_url=args.teacher_endpoint, model=args.teacher_model,
        cache=args.teacher_cache or os.path.splitext(args.output)[0] + ".teacher_cache.jsonl",
        max_target_len=args.max_target_len if tokenizer is not None else None,
        **{key: getattr(args, f"teacher_{key}") for _, key, _, _ in TEACHER_FLAGS})
    count_tokens = None
    if tokenizer is not None:
        def count_tokens(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False))
    problems = config.problems()
    if problems:
        raise TeacherUnavailable(f"teacher: {'; '.join(problems)} (the --teacher-* flags)")
    problem = preflight(config)
    if problem:
        raise TeacherUnavailable(f"{problem} (--teacher-endpoint, --teacher-model)")
    teacher = Teacher(config, count_tokens)
    missing = [row for row in rows if demonstration_text(as_list(row.get("target"))) is None]
    futures = [teacher.submit(as_list(row["prompt"]), str(row["reward_model"]["ground_truth"]), row["data_source"])
               for row in missing]
    for future in tqdm(as_completed(futures), total=len(futures), desc="teacher", unit="question", file=sys.stderr):
        future.result()  # the first refusal (TeacherUnavailable) ends the run here, whatever is still pending
    answers = [future.result() for future in futures]
    untaught = set()
    for row, answer in zip(missing, answers, strict=True):
        if answer.status == "verified":
            row["target"] = [{"role": "assistant", "content": answer.demonstration}]
        else:
            untaught.add(id(row))
    for key, value in summary_counts(answers).items():
        counts[f"teacher: {key}"] = value
    for error, value in Counter(answer.error for answer in answers if answer.status == "failed").items():
        counts[f"teacher: failed: {error}"] = value
    counts["teacher: cache file"] = config.cache
    if tokenizer is None:
        counts["teacher: demonstrations not length-checked (no --tokenizer)"] = counts["teacher: verified"]
    if args.without_demo == "drop":
        counts["dropped: no verified demonstration (--without-demo drop)"] = len(untaught)
        rows = [row for row in rows if id(row) not in untaught]
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--input", nargs="+", help="local parquet / jsonl / json files (default: the HF dataset)")
    parser.add_argument("--hf-dataset", default=HF_DATASET)
    parser.add_argument("--output", default="openr1.parquet")
    parser.add_argument("--tokenizer", help="model path: enables the length filters below")
    parser.add_argument("--max-prompt-length", type=int, default=DEFAULTS.data.max_prompt_length,
                        help="drop rows whose templated prompt is longer "
                             "(default: data.max_prompt_length, %(default)s)")
    parser.add_argument("--max-target-len", type=int, default=DEFAULTS.relift.max_target_len,
                        help="count demonstrations that do not fit in this many tokens with their EOS "
                             "(default: relift.max_target_len, %(default)s)")
    parser.add_argument("--max-rows", type=int)
    parser.add_argument("--seed", type=int, help="shuffle the rows with this seed before --holdout and --max-rows")
    parser.add_argument("--holdout", type=int, default=0,
                        help="write this many questions, drawn with --seed (0 without it), to a validation file "
                             "instead of training on them: the questions `best` is picked on, apart from every "
                             "benchmark it is evaluated on")
    parser.add_argument("--holdout-output", help="the validation file (default: <output>_valid.parquet)")
    parser.add_argument("--system-prompt", default=SYSTEM_PROMPT, help="for mapped rows; '' for none")
    parser.add_argument("--allow-missing-target", action="store_true", help="keep rows without a demonstration")
    parser.add_argument("--skip-bad", action="store_true", help="write bad rows to a rejects file instead of failing")
    parser.add_argument("--rejects", help="rejects file (default: <output>.rejects.jsonl)")
    parser.add_argument("--failing-demos", choices=["keep", "drop", "rl-only"], default="keep",
                        help="demonstrations out of the training layout or graded wrong by relift's reward: keep them "
                             "(with a warning), drop their rows, or keep the rows for RL only (no target; train with "
                             "relift.require_demonstrations=false, or let --teacher-endpoint fill them)")
    teacher = parser.add_argument_group("teacher", "fill missing demonstrations from an OpenAI-compatible endpoint "
                                        "(relift/teacher.py); only replies graded correct are kept. Defaults: "
                                        "relift.teacher in relift/config/relift_trainer.yaml")
    teacher.add_argument("--teacher-endpoint", help="base URL, e.g. http://127.0.0.1:8000/v1")
    teacher.add_argument("--teacher-model", help="the served model's name")
    teacher.add_argument("--teacher-cache", help="default: <output>.teacher_cache.jsonl")
    for flag, key, kind, meaning in TEACHER_FLAGS:
        default = DEFAULTS.relift.teacher[key]
        teacher.add_argument(f"--teacher-{flag}", dest=f"teacher_{key}", type=kind, default=default,
                             help=f"{meaning} (default: relift.teacher.{key}, {default})")
    teacher.add_argument("--without-demo", choices=["drop", "keep"], default="drop",
                         help="rows still without a demonstration: drop, or keep for RL only "
                              "(train with relift.require_demonstrations=false)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.holdout < 0:
        parser.error(f"--holdout {args.holdout}: a number of questions, 0 or more")
    if args.teacher_endpoint and not args.teacher_model:
        parser.error("--teacher-endpoint needs --teacher-model, the served model's name")
    try:
        summary = prepare(args)
    except (SourceUnavailable, DataFileError, DataRowError, TeacherUnavailable, ValueError) as error:
        print(f"prepare_train: error: {error}", file=sys.stderr)
        return 2
    for key, value in summary.items():
        print(f"  {key:<70} {value}")
    print(f"prepare_train: wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
