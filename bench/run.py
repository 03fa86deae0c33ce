"""`make bench`: ReLIFT against plain GRPO, side by side in one run, on CPU with the demo's tiny model.

Both runs start from the same warm-started tiny Qwen2 (it solves some additions, no subtraction or
multiplication), see the same data in the same order with the same seeds, and differ only in
`relift.enable`. Printed: held-out accuracy per skill after training, mean training reward, seconds
per step and what the supervised updates cost. Results also go to outputs/bench/results.json.

    python bench/run.py [--steps 24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from relift.demo import build_inputs, train  # noqa: E402

SKILLS = ("add", "sub", "mul")


def row_summary(rows: list[dict]) -> dict:
    last = rows[-1]
    result = {f"val/{skill}": last.get(f"val-core/synthetic_math/{skill}/acc/mean@1") for skill in SKILLS}
    result["train_reward_mean"] = sum(r["critic/score/mean"] for r in rows) / len(rows)
    result["seconds_per_step"] = sum(r["timing_s/step"] for r in rows[1:]) / max(1, len(rows) - 1)
    result["sft_seconds_per_step"] = sum(r.get("timing_s/relift_sft", 0.0) for r in rows[1:]) / max(1, len(rows) - 1)
    result["sft_updates"] = int(last.get("relift/sft_updates_total", 0))
    result["demos_used_frac"] = last.get("relift/demos_used_frac", 0.0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    inputs = build_inputs(out, warm_start_steps=300)
    results = {}
    for name, enable in [("relift", "true"), ("grpo", "false")]:
        rows = train(inputs, os.path.join(out, name), args.steps, [f"relift.enable={enable}", f"trainer.experiment_name={name}"])
        results[name] = row_summary(rows)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    keys = [f"val/{s}" for s in SKILLS] + ["train_reward_mean", "seconds_per_step", "sft_seconds_per_step", "sft_updates", "demos_used_frac"]
    print(f"\n{'metric':<24}{'ReLIFT':>12}{'GRPO':>12}")
    for key in keys:
        ours, theirs = results["relift"][key], results["grpo"][key]
        print(f"{key:<24}{ours if ours is not None else float('nan'):>12.3f}{theirs if theirs is not None else float('nan'):>12.3f}")
    print(f"{'step time ratio':<24}{results['relift']['seconds_per_step'] / results['grpo']['seconds_per_step']:>12.2f}x")


if __name__ == "__main__":
    main()
