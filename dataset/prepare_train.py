"""Prepare ReLIFT's training parquet: veRL's RL schema plus the demonstration (`target`).

    cd dataset && python prepare_train.py                       # the reference's source, from the HF hub
    python dataset/prepare_train.py --input my.jsonl --output dataset/mine.parquet \\
        --tokenizer /models/Qwen2.5-Math-7B-16k-think --max-prompt-length 1024 --max-target-len 8192

Sources: the Hugging Face dataset `Elliott/Openr1-Math-46k-8192` (LUFFY's OpenR1 subset, already in the
schema) by default, or local parquet / jsonl / json files (`--input`, several allowed) in the schema or
in a common shape that is mapped to it:
- `problem` + `solution` [+ `answer`] (OpenR1 / MATH style): the solution is the demonstration; without
  `answer`, the last `\\boxed{...}` of the solution is the ground truth;
- `question` + `answer` with a `#### <answer>` line (GSM8K style).
Rows without a demonstration can get one from a teacher model (`--teacher-endpoint URL --teacher-model
NAME`, any OpenAI-compatible server; relift/teacher.py): only replies that relift's reward grades correct
against the row's answer are kept, answers are cached (`--teacher-cache`, shared with training's
`relift.teacher.cache`), and rows left without one are dropped or kept for RL only (`--without-demo`).
Every output row is validated (relift/data.py, the same check the trainer runs before Ray starts).
A bad row stops the run with its file, row and field, or with `--skip-bad` goes to a rejects file.
The output is written atomically: a failed run never clobbers an existing file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

import pandas as pd

from relift.data import (
    DataFileError,
    DataRowError,
    as_list,
    is_missing,
    read_table,
    row_problem,
    write_parquet_atomic,
    write_text_atomic,
)
from relift.reward import last_boxed
from relift.sft import demonstration_text
from relift.teacher import TeacherUnavailable

HF_DATASET = "Elliott/Openr1-Math-46k-8192"

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
        question, demonstration = record["question"], record["answer"]
        answer = demonstration.rsplit("####", 1)[-1].strip() if isinstance(demonstration, str) and "####" in demonstration else None
    else:
        raise DataRowError(source, index, "*", f"unrecognised row shape (columns: {sorted(record)}); expected the "
                           "training schema, problem/solution[/answer] or question/answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)  # a mapped source may store numeric answers as numbers
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": question}]
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
            f"cannot load the Hugging Face dataset {name} ({type(error).__name__}: {str(error).splitlines()[0][:200]}).\n"
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
            key = json.dumps([row["prompt"], row["reward_model"], row.get("target")], sort_keys=True, default=str)
            if key in seen:
                counts["dropped: exact duplicate"] += 1
                continue
            seen.add(key)
            if tokenizer is not None:
                prompt_ids = tokenizer.apply_chat_template(as_list(row["prompt"]), add_generation_prompt=True, tokenize=False)
                if len(tokenizer.encode(prompt_ids, add_special_tokens=False)) > args.max_prompt_length:
                    counts["dropped: prompt longer than --max-prompt-length"] += 1
                    continue
                text = demonstration_text(as_list(row.get("target"))) or ""
                # The trainer's rule (relift.sft.build_sft_batch): the EOS counts against the bound.
                if len(tokenizer.encode(text, add_special_tokens=False)) >= args.max_target_len:
                    counts["kept: demonstration longer than --max-target-len (will be truncated)"] += 1
            kept.append(row)

    if args.seed is not None:
        kept = pd.DataFrame(kept).sample(frac=1.0, random_state=args.seed).to_dict("records") if kept else kept
    if args.max_rows is not None:
        kept = kept[: args.max_rows]
    if args.teacher_endpoint:
        kept = teach(args, kept, tokenizer, counts)
    if not kept:
        raise DataFileError(args.output, "no valid rows to write")
    for i, row in enumerate(kept):
        row["extra_info"] = {**(row.get("extra_info") or {}), "index": i}
    write_parquet_atomic(pd.DataFrame(kept), args.output)
    counts["written"] = len(kept)
    if rejects:
        rejects_path = args.rejects or os.path.splitext(args.output)[0] + ".rejects.jsonl"
        write_text_atomic(rejects_path, "".join(json.dumps(r, default=str) + "\n" for r in rejects))
        counts["rejects file"] = rejects_path
    return dict(counts)


def teach(args, rows: list[dict], tokenizer, counts: Counter) -> list[dict]:
    """Fill missing demonstrations from the teacher (relift.teacher); rows left without one are kept for
    RL only or dropped (--without-demo)."""
    from tqdm import tqdm

    from relift.teacher import Teacher, TeacherConfig, preflight, summary_counts

    config = TeacherConfig(
        base_url=args.teacher_endpoint, model=args.teacher_model or "", api_key_env=args.teacher_api_key_env,
        cache=args.teacher_cache or os.path.splitext(args.output)[0] + ".teacher_cache.jsonl",
        concurrency=args.teacher_concurrency, timeout_s=args.teacher_timeout, max_retries=args.teacher_retries,
        max_tokens=args.teacher_max_tokens, temperature=args.teacher_temperature, attempts=args.teacher_attempts,
        request_budget=args.teacher_budget, max_target_len=args.max_target_len if tokenizer is not None else None)
    count_tokens = (lambda text: len(tokenizer.encode(text, add_special_tokens=False))) if tokenizer is not None else None
    problem = preflight(config)
    if problem:
        raise TeacherUnavailable(f"{problem} (--teacher-endpoint, --teacher-model)")
    teacher = Teacher(config, count_tokens)
    missing = [row for row in rows if demonstration_text(as_list(row.get("target"))) is None]
    futures = [teacher.submit(as_list(row["prompt"]), str(row["reward_model"]["ground_truth"]), row["data_source"])
               for row in missing]
    answers = [future.result() for future in tqdm(futures, desc="teacher", unit="question", file=sys.stderr)]
    untaught = set()
    for row, answer in zip(missing, answers, strict=True):
        if answer.status == "verified":
            row["target"] = [{"role": "assistant", "content": answer.demonstration}]
        else:
            untaught.add(id(row))
    for key, value in summary_counts(answers).items():
        counts[f"teacher: {key}"] = value
    counts["teacher: cache file"] = config.cache
    if tokenizer is None:
        counts["teacher: demonstrations not length-checked (no --tokenizer)"] = counts["teacher: verified"]
    if args.without_demo == "drop":
        counts["dropped: no verified demonstration (--without-demo drop)"] = len(untaught)
        rows = [row for row in rows if id(row) not in untaught]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", help="local parquet / jsonl / json files (default: the HF dataset)")
    parser.add_argument("--hf-dataset", default=HF_DATASET)
    parser.add_argument("--output", default="openr1.parquet")
    parser.add_argument("--tokenizer", help="model path: enables the length filters below")
    parser.add_argument("--max-prompt-length", type=int, default=1024, help="drop rows whose templated prompt is longer")
    parser.add_argument("--max-target-len", type=int, default=8192, help="count demonstrations that do not fit in this many tokens with their EOS")
    parser.add_argument("--max-rows", type=int)
    parser.add_argument("--seed", type=int, help="shuffle the rows with this seed before --max-rows")
    parser.add_argument("--system-prompt", default=SYSTEM_PROMPT, help="for mapped rows; '' for none")
    parser.add_argument("--allow-missing-target", action="store_true", help="keep rows without a demonstration")
    parser.add_argument("--skip-bad", action="store_true", help="write bad rows to a rejects file instead of failing")
    parser.add_argument("--rejects", help="rejects file (default: <output>.rejects.jsonl)")
    teacher = parser.add_argument_group("teacher", "fill missing demonstrations from an OpenAI-compatible endpoint "
                                        "(relift/teacher.py); only replies graded correct are kept")
    teacher.add_argument("--teacher-endpoint", help="base URL, e.g. http://127.0.0.1:8000/v1")
    teacher.add_argument("--teacher-model", help="the served model's name")
    teacher.add_argument("--teacher-api-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
    teacher.add_argument("--teacher-cache", help="default: <output>.teacher_cache.jsonl")
    teacher.add_argument("--teacher-concurrency", type=int, default=8)
    teacher.add_argument("--teacher-attempts", type=int, default=1, help="replies asked per question until one verifies")
    teacher.add_argument("--teacher-max-tokens", type=int, default=8192)
    teacher.add_argument("--teacher-temperature", type=float, default=0.6)
    teacher.add_argument("--teacher-timeout", type=float, default=600.0, help="seconds per request")
    teacher.add_argument("--teacher-retries", type=int, default=4, help="on 429, 5xx, timeouts, dropped connections")
    teacher.add_argument("--teacher-budget", type=int, help="at most this many HTTP requests")
    teacher.add_argument("--without-demo", choices=["drop", "keep"], default="drop",
                         help="rows still without a demonstration: drop, or keep for RL only "
                              "(train with relift.require_demonstrations=false)")
    args = parser.parse_args(argv)
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
