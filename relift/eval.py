"""Evaluate checkpoints on the bundled benchmarks: generate, grade, and print one table per model.

    python -m relift.eval run MODEL [MODEL ...] [--name NAME ...] [--data FILE ...] [--n 1] [--out results]
    python -m relift.eval compare results/*

- Prompts: each row's chat messages through the model's chat template with the generation prompt, the
  same as training (`--template no-system` drops the system message, as the reference's eval did).
- Backend `auto`: vLLM when it is importable and a GPU is visible, else transformers batched sampling.
- Grading: `relift.reward.grade`, the training reward's rule (text after `</think>`, math-verify,
  option letters for multiple choice), bounded in time, in a pool of grader processes.
- Outputs in `<out>/<name>/`: `samples.jsonl` (one line per sample, appended and flushed as it is made:
  rerunning skips samples already there, a crash loses nothing written), `summary.json` and `table.md`.
- Metrics per benchmark (= `data_source`): avg@k (mean correctness over samples and repeated rows),
  pass@k (unbiased estimator, k = samples per distinct question), mean response length in tokens
  (reasoning included), share cut at max tokens, share without `</think>`; averages over the paper's
  in-distribution (six math) and out-of-distribution (GPQA, ARC-c) benchmarks.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = [os.path.join(REPO, "dataset", name) for name in ("math_eval.avg32.parquet", "gpqa_diamond.parquet", "arc_c.parquet")]
IN_DISTRIBUTION = ("aime", "aime25", "amc", "math", "minerva", "olympiad_bench")
OUT_OF_DISTRIBUTION = ("gpqa", "arc_c")


@dataclass
class Item:
    """One sample to produce: row `row` of `file`, sample number `sample`."""

    file: str
    row: int
    sample: int
    benchmark: str
    messages: list[dict]
    ground_truth: str

    @property
    def key(self) -> tuple[str, int, int]:
        return os.path.basename(self.file), self.row, self.sample


def load_items(files: list[str], n: int, max_rows: int | None) -> list[Item]:
    from relift.data import as_list, read_table

    items = []
    for path in files:
        frame = read_table(path)
        taken: dict[str, int] = defaultdict(int)
        for row, record in enumerate(frame.to_dict("records")):
            benchmark = record["data_source"]
            if max_rows is not None and taken[benchmark] >= max_rows:
                continue
            taken[benchmark] += 1
            messages = [dict(m) for m in as_list(record["prompt"])]
            for sample in range(n):
                items.append(Item(path, row, sample, benchmark, messages, str(record["reward_model"]["ground_truth"])))
    return items


def read_done(path: str) -> dict[tuple, dict]:
    """Samples already written. A torn last line (a crash mid-write) is cut off and its sample redone."""
    done = {}
    if os.path.exists(path):
        with open(path, "rb+") as f:
            content = f.read()
            if content and not content.endswith(b"\n"):
                f.truncate(content.rfind(b"\n") + 1)
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[(record["file"], record["row"], record["sample"])] = record
    return done


def render(tokenizer, messages: list[dict], template: str) -> str:
    if template == "no-system":
        messages = [m for m in messages if m["role"] != "system"]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class HFGenerator:
    """transformers batched sampling (CPU, or a GPU without vLLM)."""

    def __init__(self, model_path: str, device: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        self.device = device

    def generate(self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int, seed: int):
        """Returns per prompt (response text, response token count, stopped by EOS)."""
        torch = self.torch
        torch.manual_seed(seed)
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p if temperature > 0 else None,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        results = []
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        for ids in output[:, encoded["input_ids"].shape[1]:].tolist():
            stop = next((i for i, t in enumerate(ids) if t in eos), None)
            tokens = ids[: stop + 1] if stop is not None else ids
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append((text, len(tokens), stop is not None))
        return results


class VLLMGenerator:
    def __init__(self, model_path: str, device: str):
        import torch
        from vllm import LLM

        self.llm = LLM(model=model_path, tensor_parallel_size=torch.cuda.device_count(), enforce_eager=True)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts, temperature, top_p, max_new_tokens, seed):
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
        outputs = self.llm.generate(prompts, params)
        return [(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop") for o in outputs]


def make_generator(backend: str, model_path: str):
    import importlib.util

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "auto":
        backend = "vllm" if device == "cuda" and importlib.util.find_spec("vllm") else "hf"
    return (VLLMGenerator if backend == "vllm" else HFGenerator)(model_path, device), backend


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) from n samples of which c are correct."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(records: list[dict]) -> dict:
    by_benchmark: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_benchmark[record["benchmark"]].append(record)
    summary = {}
    for benchmark, rows in sorted(by_benchmark.items()):
        per_question: dict[tuple, list[bool]] = defaultdict(list)
        for r in rows:
            per_question[(r["prompt"], r["ground_truth"])].append(r["correct"])
        k = min(len(v) for v in per_question.values())
        summary[benchmark] = {
            "samples": len(rows),
            "questions": len(per_question),
            f"avg@{k}": float(np.mean([r["correct"] for r in rows])),
            f"pass@{k}": float(np.mean([pass_at_k(len(v), sum(v), k) for v in per_question.values()])),
            "k": k,
            "response_tokens": float(np.mean([r["response_tokens"] for r in rows])),
            "truncated": float(np.mean([r["truncated"] for r in rows])),
            "no_think_close": float(np.mean([not r["has_think_close"] for r in rows])),
        }
    for name, group in (("in_distribution", IN_DISTRIBUTION), ("out_of_distribution", OUT_OF_DISTRIBUTION)):
        present = [summary[b] for b in group if b in summary]
        if present:
            summary[f"average/{name}"] = {"avg": float(np.mean([s[f"avg@{s['k']}"] for s in present])), "benchmarks": len(present)}
    return summary


def _cell(s: dict | None) -> str:
    if s is None:
        return ""
    k = s["k"]
    return f"{100 * s[f'avg@{k}']:.1f} (pass@{k} {100 * s[f'pass@{k}']:.1f}, {s['response_tokens']:.0f} tok)"


def markdown_table(summaries: dict[str, dict]) -> str:
    """One row per benchmark, one column per model: avg@k (pass@k)."""
    names = list(summaries)
    benchmarks = sorted({b for s in summaries.values() for b in s if not b.startswith("average/")})
    lines = ["| benchmark | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for b in benchmarks:
        cells = [_cell(summaries[name].get(b)) for name in names]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    for group in ("in_distribution", "out_of_distribution"):
        cells = [f"{100 * summaries[n][f'average/{group}']['avg']:.1f}" if f"average/{group}" in summaries[n] else "" for n in names]
        lines.append(f"| **avg {group.replace('_', '-')}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out_dir: str, name: str, summary: dict) -> str:
    table = markdown_table({name: summary})
    from relift.data import write_text_atomic

    write_text_atomic(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2))
    write_text_atomic(os.path.join(out_dir, "table.md"), table + "\n")
    return table


def evaluate(model_path: str, name: str, args) -> dict:
    from tqdm import tqdm

    from relift.reward import grade

    out_dir = os.path.join(args.out, name)
    os.makedirs(out_dir, exist_ok=True)
    samples_path = os.path.join(out_dir, "samples.jsonl")
    items = load_items(args.data, args.n, args.max_rows_per_benchmark)
    done = read_done(samples_path)
    pending = [item for item in items if item.key not in done]
    print(f"[eval] {name}: {len(items)} samples, {len(done)} already in {samples_path}, {len(pending)} to go")
    if pending:
        generator, backend = make_generator(args.backend, model_path)
        print(f"[eval] {name}: backend {backend}")
        graders = concurrent.futures.ThreadPoolExecutor(args.grader_threads)
        with open(samples_path, "a") as sink, tqdm(total=len(pending), desc=name, unit="sample") as bar:
            for start in range(0, len(pending), args.batch_size):
                batch = pending[start : start + args.batch_size]
                prompts = [render(generator.tokenizer, item.messages, args.template) for item in batch]
                outputs = generator.generate(prompts, args.temperature, args.top_p, args.max_new_tokens, args.seed + start)
                grades = list(graders.map(
                    lambda pair: grade(pair[0].benchmark, pair[1][0], pair[0].ground_truth, timeout_s=args.grade_timeout_s),
                    zip(batch, outputs, strict=True),
                ))
                for item, prompt, (text, n_tokens, stopped), g in zip(batch, prompts, outputs, grades, strict=True):
                    record = {
                        "file": item.key[0], "row": item.row, "sample": item.sample, "benchmark": item.benchmark,
                        "prompt": prompt, "response": text, "extracted": g.extracted, "ground_truth": item.ground_truth,
                        "correct": g.correct, "has_think_close": g.has_think_close, "grade_status": g.status,
                        "response_tokens": n_tokens, "truncated": not stopped and n_tokens >= args.max_new_tokens,
                    }
                    sink.write(json.dumps(record) + "\n")
                    done[item.key] = record
                sink.flush()
                os.fsync(sink.fileno())
                bar.update(len(batch))
        graders.shutdown()
    wanted = {item.key for item in items}
    summary = summarize([r for k, r in done.items() if k in wanted])
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="generate and grade")
    run.add_argument("models", nargs="+", help="model paths (or hub names on a connected machine)")
    run.add_argument("--name", nargs="+", help="one name per model (default: the path's last folder)")
    run.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    run.add_argument("--out", default="results")
    run.add_argument("--n", type=int, default=1, help="samples per row (repeated rows add more)")
    run.add_argument("--temperature", type=float, default=0.6)
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--max-new-tokens", type=int, default=8192)
    run.add_argument("--template", choices=["train", "no-system"], default="train")
    run.add_argument("--backend", choices=["auto", "vllm", "hf"], default="auto")
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--max-rows-per-benchmark", type=int, help="first K rows of each benchmark (smoke tests)")
    run.add_argument("--grader-threads", type=int, default=4)
    run.add_argument("--grade-timeout-s", type=float, default=10.0)
    run.add_argument("--seed", type=int, default=0)
    cmp = commands.add_parser("compare", help="put several results/<model> folders side by side")
    cmp.add_argument("results", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "compare":
        print(compare(args.results))
        return
    names = args.name or [os.path.basename(os.path.normpath(m)) for m in args.models]
    if len(names) != len(args.models):
        parser.error(f"{len(args.models)} models but {len(names)} names")
    started = time.time()
    for model, name in zip(args.models, names, strict=True):
        evaluate(model, name, args)
    print(f"[eval] done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
