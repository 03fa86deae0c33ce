"""`python -m relift.eval run|compare` (see relift/eval/__init__.py)."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import sys
import time

import relift.eval
from relift.cli import HelpFormatter
from relift.data import write_text_atomic
from relift.eval import identity
from relift.eval.generate import make_generator, render, sample_seed
from relift.eval.items import DEFAULT_DATA, load_items
from relift.eval.metrics import markdown_table, summarize
from relift.eval.samples import SampleLog, write_outputs
from relift.reward import DEFAULT_TIMEOUT_S

# A grading that failed says nothing about the answer: the sample is stored ungraded and graded again by the
# next run.
GRADING_FAILED = ("timeout", "error")
# Folder names that say which file of a run a model is, not which run: the default name takes its parents too.
GENERIC_NAME = re.compile(r"^(best|final|final_model|huggingface|hf|actor|model|checkpoint|(global|best)_step_\d+)$")


def default_name(model_path: str) -> str:
    """The results folder's name for a model path: its last folder, joined to its parents' while that one is
    generic (`train_results/ReLIFT/math_7b/best` -> `math_7b_best`)."""
    parts = [part for part in os.path.normpath(model_path).split(os.sep) if part not in ("", ".")]
    name = parts.pop()
    last = name
    while GENERIC_NAME.match(last) and parts:
        last = parts.pop()
        name = f"{last}_{name}"
    return name


def grade_record(benchmark: str, response: str, ground_truth: str, timeout_s: float) -> dict:
    from relift.reward import grade

    g = grade(benchmark, response, ground_truth, timeout_s=timeout_s)
    return {"extracted": g.extracted, "correct": None if g.status in GRADING_FAILED else g.correct,
            "has_think_close": g.has_think_close, "grade_status": g.status}


def regrade_failed(log: SampleLog, graders, timeout_s: float) -> tuple[int, int]:
    """Grade again the stored samples whose grading failed; returns (regraded, still failed)."""
    failed = [r for r in log.done.values() if r.get("grade_status") in GRADING_FAILED]
    if not failed:
        return 0, 0
    regraded = list(graders.map(lambda r: {**r, **grade_record(r["benchmark"], r["response"], r["ground_truth"],
                                                                timeout_s)}, failed))
    log.append(regraded)
    return len(regraded), sum(r["grade_status"] in GRADING_FAILED for r in regraded)


def run_identity(model_path: str, args) -> dict:
    settings = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
                "template": args.template, "seed": args.seed, "n": args.n}
    return identity.identity(model_path, settings, args.data)


def evaluate(model_path: str, name: str, args, wanted: dict) -> dict:
    from tqdm import tqdm

    out_dir = os.path.join(args.out, name)
    log = SampleLog(os.path.join(out_dir, "samples.jsonl"))
    recorded = os.path.join(out_dir, identity.FILE)
    if os.path.exists(recorded):  # benchmark files added since: their fingerprints join the record
        with open(recorded) as f:
            wanted = {**wanted, "data": {**json.load(f)["data"], **wanted["data"]}}
    write_text_atomic(recorded, json.dumps(wanted, indent=2))
    graders = concurrent.futures.ThreadPoolExecutor(args.grader_threads)
    regraded, still = regrade_failed(log, graders, args.grade_timeout_s)
    if regraded:
        print(f"[eval] {name}: graded again {regraded} samples whose grading had failed ({still} failed again)")
    items = load_items(args.data, args.n, args.max_rows_per_benchmark)
    pending = [item for item in items if item.key not in log.done]
    print(f"[eval] {name}: {len(items)} samples, {len(log.done)} already in {log.path}, {len(pending)} to go")
    if pending:
        generator, backend = make_generator(args.backend, model_path, args.tensor_parallel_size,
                                            args.data_parallel_size)
        parallel = getattr(generator, "parallelism", None)
        print(f"[eval] {name}: backend {backend}"
              + (f", {parallel.data} cop{'y' if parallel.data == 1 else 'ies'} of the model on "
                 f"{parallel.tensor} device(s) each" if parallel else ""))
        # vLLM schedules what it is given: every pending sample in one call unless --batch-size says otherwise.
        batch_size = args.batch_size or (len(pending) if backend == "vllm" else 64)
        with tqdm(total=len(pending), desc=name, unit="sample") as bar:
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                prompts = [render(generator.tokenizer, item.messages, args.template) for item in batch]
                seeds = [sample_seed(args.seed, item.file, item.row, item.sample) for item in batch]
                outputs = generator.generate(prompts, args.temperature, args.top_p, args.max_new_tokens, seeds)
                grades = list(graders.map(
                    lambda pair: grade_record(pair[0].benchmark, pair[1][0], pair[0].ground_truth,
                                              args.grade_timeout_s),
                    zip(batch, outputs, strict=True),
                ))
                log.append([
                    {
                        "file": item.key[0], "row": item.row, "sample": item.sample, "benchmark": item.benchmark,
                        "prompt": prompt, "response": text, "ground_truth": item.ground_truth, **g,
                        "response_tokens": n_tokens, "truncated": not stopped and n_tokens >= args.max_new_tokens,
                    }
                    for item, prompt, (text, n_tokens, stopped), g in zip(batch, prompts, outputs, grades, strict=True)
                ])
                bar.update(len(batch))
        if hasattr(generator, "close"):
            generator.close()
    graders.shutdown()
    wanted = {item.key for item in items}
    summary = summarize([r for k, r in log.done.items() if k in wanted])
    print(f"\n## {name}\n\n" + write_outputs(out_dir, name, summary) + "\n")
    return summary


def compare(result_dirs: list[str]) -> str:
    summaries = {}
    for path in result_dirs:
        summary_path = os.path.join(path, "summary.json")
        if os.path.exists(summary_path):
            with open(summary_path) as f:
                summaries[os.path.basename(os.path.normpath(path))] = json.load(f)
    if not summaries:
        raise SystemExit(f"no summary.json under {result_dirs}")
    return markdown_table(summaries)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m relift.eval", description=relift.eval.__doc__,
                                     formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="generate and grade", formatter_class=HelpFormatter)
    run.add_argument("models", nargs="+", help="model paths (or hub names on a connected machine)")
    run.add_argument("--name", nargs="+", help="one name per model (default: the path's last folder, with its "
                     "parents' while that is best, final, huggingface, global_step_N, ...)")
    run.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    run.add_argument("--out", default="results")
    run.add_argument("--n", type=int, default=1, help="samples per row (repeated rows add more)")
    run.add_argument("--temperature", type=float, default=0.6)
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--max-new-tokens", type=int, default=8192)
    run.add_argument("--template", choices=["train", "no-system"], default="train")
    run.add_argument("--backend", choices=["auto", "vllm", "hf"], default="auto",
                     help="auto: vLLM wherever it is installed, else transformers")
    run.add_argument("--batch-size", type=int,
                     help="samples per generation call, written when it returns (default: all for vLLM, 64 else)")
    run.add_argument("--tensor-parallel-size", type=int,
                     help="GPUs per copy of the model (vLLM; default: the fewest that fit the weights and divide "
                          "the attention and KV heads)")
    run.add_argument("--data-parallel-size", type=int,
                     help="copies of the model, each in a process of its own (vLLM; default: as many as the GPUs hold)")
    run.add_argument("--max-rows-per-benchmark", type=int, help="first K rows of each benchmark (smoke tests)")
    run.add_argument("--grader-threads", type=int, default=4)
    run.add_argument("--grade-timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                     help="seconds one answer may take to grade (relift_trainer.yaml's reward timeout)")
    run.add_argument("--seed", type=int, default=0)
    cmp = commands.add_parser("compare", help="put several results/<model> folders side by side",
                              formatter_class=HelpFormatter)
    cmp.add_argument("results", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "compare":
        print(compare(args.results))
        return
    names = args.name or [default_name(m) for m in args.models]
    if len(names) != len(args.models):
        parser.error(f"{len(args.models)} models but {len(names)} names")
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        parser.error(f"two models would write {os.path.join(args.out, shared[0])}: name each with --name")
    missing = [path for path in args.data if not os.path.exists(path)]
    if missing:  # before any model is loaded
        parser.error(f"--data {missing[0]}: file not found (the bundled benchmarks are under the repository's "
                     "dataset/: run from its root, or name the files with --data)")
    identities = [run_identity(model, args) for model in args.models]
    for name, wanted in zip(names, identities, strict=True):
        problem = identity.mismatch(os.path.join(args.out, name), wanted)
        if problem:
            parser.error(f"{problem}: evaluate into another --name or --out, or move that folder away")
    started = time.time()
    for model, name, wanted in zip(args.models, names, identities, strict=True):
        try:
            evaluate(model, name, args, wanted)
        except ValueError as error:  # a parallelism vLLM would refuse: before any model loads
            parser.error(f"{model}: {error}")
    print(f"[eval] done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
