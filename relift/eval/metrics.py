"""avg@k, pass@k, lengths and truncation per benchmark, averages per group, and the markdown table."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

IN_DISTRIBUTION = ("aime", "aime25", "amc", "math", "minerva", "olympiad_bench")
OUT_OF_DISTRIBUTION = ("gpqa", "arc_c")


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
            per_question[(r["prompt"], r["ground_truth"])].append(bool(r["correct"]))
        k = min(len(v) for v in per_question.values())
        summary[benchmark] = {
            "samples": len(rows),
            "questions": len(per_question),
            f"avg@{k}": float(np.mean([bool(r["correct"]) for r in rows])),
            f"pass@{k}": float(np.mean([pass_at_k(len(v), sum(v), k) for v in per_question.values()])),
            "k": k,
            "response_tokens": float(np.mean([r["response_tokens"] for r in rows])),
            "truncated": float(np.mean([r["truncated"] for r in rows])),
            "no_think_close": float(np.mean([not r["has_think_close"] for r in rows])),
            # Samples whose grading failed (timeout, grader crash) count as not correct here; the next run
            # grades them again.
            "ungraded": sum(r["correct"] is None for r in rows),
        }
    for name, group in (("in_distribution", IN_DISTRIBUTION), ("out_of_distribution", OUT_OF_DISTRIBUTION)):
        present = [summary[b] for b in group if b in summary]
        if present:
            average = float(np.mean([s[f"avg@{s['k']}"] for s in present]))
            summary[f"average/{name}"] = {"avg": average, "benchmarks": len(present)}
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
        key = f"average/{group}"
        cells = [f"{100 * summaries[n][key]['avg']:.1f}" if key in summaries[n] else "" for n in names]
        lines.append(f"| **avg {group.replace('_', '-')}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)
