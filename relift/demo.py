"""`make demo`: a real ReLIFT run on CPU with a tiny model and data built offline.

    python -m relift.demo --out outputs/cpu-demo [--steps 24] [hydra overrides ...]

1. synthetic arithmetic questions with demonstrations (dataset/synthetic_math.py);
2. a tiny Qwen2 model and tokenizer, warm-started on addition only (relift/tiny_model.py), so RL has
   questions it sometimes solves and ReLIFT has questions (subtraction, multiplication) it never does;
3. `python -m relift.main device=cpu ...`: veRL's RayPPOTrainer loop with ReLIFTTrainer's hooks;
4. from veRL's metrics log: a PNG plot, a summary, and the final model in Hugging Face format.

Outputs in --out: metrics.jsonl (veRL's file logger: one {"step", "data"} object per step), relift.png,
summary.json, final_model/ (loads with transformers), checkpoints/, train.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd: list[str], log_path: str | None = None, env: dict | None = None) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if log_path is None:
        subprocess.run(cmd, check=True, env=env)
        return
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in process.stdout:
            log.write(line)
            log.flush()
            # The full veRL/Ray log goes to the file; the terminal gets ReLIFT's one line per step.
            if "[relift]" in line or "Error" in line or "Traceback" in line:
                print(line.split("[0m ", 1)[-1].rstrip(), flush=True)
        if process.wait():
            raise SystemExit(f"training failed (exit {process.returncode}); full log: {log_path}")


def read_metrics(path: str) -> list[dict]:
    """veRL's file logger lines -> one dict per training step (step 0 = validation before training)."""
    rows = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            rows.append({"step": record["step"], **record["data"]})
    return [r for r in rows if "relift/buffer_size" in r or "critic/score/mean" in r]


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    axes[0].plot(steps, [r["critic/score/mean"] for r in rows], marker="o")
    axes[0].set_ylabel("mean reward")
    axes[1].plot(steps, [r["relift/buffer_size"] for r in rows], marker="o", color="tab:orange")
    axes[1].plot(steps, [r["relift/hardest_in_batch"] for r in rows], marker=".", color="tab:red", alpha=0.6)
    axes[1].legend(["buffer size", "hardest in batch"])
    axes[2].bar(steps, [r["relift/sft_updates"] for r in rows], color="tab:green")
    axes[2].set_ylabel("supervised updates")
    axes[2].set_xlabel("training step")
    fig.suptitle("ReLIFT on CPU (tiny Qwen2, synthetic arithmetic)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def summarize(rows: list[dict], wall_s: float) -> dict:
    first, last = rows[0], rows[-1]
    quarter = max(1, len(rows) // 4)
    return {
        "steps": last["step"],
        "reward_first_quarter": sum(r["critic/score/mean"] for r in rows[:quarter]) / quarter,
        "reward_last_quarter": sum(r["critic/score/mean"] for r in rows[-quarter:]) / quarter,
        "hardest_questions_seen": int(last["relift/hardest_seen_total"]),
        "supervised_updates": int(last["relift/sft_updates_total"]),
        "sft_loss_first": next((r["relift/sft_loss"] for r in rows if r["relift/sft_updates"]), None),
        "sft_loss_last": next((r["relift/sft_loss"] for r in reversed(rows) if r["relift/sft_updates"]), None),
        "demos_used_frac": last["relift/demos_used_frac"],
        "demos_truncated": int(last["relift/demos_truncated"]),
        "buffer_size_end": int(last["relift/buffer_size"]),
        "seconds_per_step": sum(r["timing_s/step"] for r in rows) / len(rows),
        "wall_time_s": round(wall_s, 1),
        "first_step_reward": first["critic/score/mean"],
    }


def build_inputs(out: str, warm_start_steps: int) -> dict[str, str]:
    """Synthetic data and the warm-started tiny model under `out` (the model is reused when present)."""
    python = sys.executable
    data_dir, model_dir = os.path.join(out, "data"), os.path.join(out, "tiny-model")
    _run([python, os.path.join(REPO, "dataset", "synthetic_math.py"), "--out", data_dir, "--val-rows", "96"])
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        _run([python, "-m", "relift.tiny_model", "--data", os.path.join(data_dir, "train.parquet"), "--out", model_dir,
              "--warm-start-data", os.path.join(data_dir, "warm_start.parquet"),
              "--warm-start-steps", str(warm_start_steps)])
    return {"model": model_dir, "train": os.path.join(data_dir, "train.parquet"), "val": os.path.join(data_dir, "val.parquet")}


def train(inputs: dict[str, str], run_dir: str, steps: int, overrides: list[str]) -> list[dict]:
    """One `python -m relift.main device=cpu` run; returns its per-step metrics."""
    ckpt_dir, metrics_path = os.path.join(run_dir, "checkpoints"), os.path.join(run_dir, "metrics.jsonl")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    os.makedirs(run_dir, exist_ok=True)
    command = [
        sys.executable, "-m", "relift.main",
        "device=cpu",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"data.train_files={inputs['train']}",
        f"data.val_files={inputs['val']}",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={steps}",
        f"trainer.test_freq={steps}",
        "trainer.logger=[file]",
        f"trainer.default_local_dir={ckpt_dir}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        *overrides,
    ]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": metrics_path, "PYTHONUNBUFFERED": "1"}
    _run(command, log_path=os.path.join(run_dir, "train.log"), env=env)
    return read_metrics(metrics_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/cpu-demo")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warm-start-steps", type=int, default=300)
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for relift.main")
    args = parser.parse_args(argv)
    start = time.time()
    out = os.path.abspath(args.out)
    inputs = build_inputs(out, args.warm_start_steps)
    rows = train(inputs, out, args.steps, ["trainer.experiment_name=cpu-demo", *args.overrides])

    final_model = os.path.join(out, "final_model")
    shutil.rmtree(final_model, ignore_errors=True)
    shutil.copytree(os.path.join(out, "checkpoints", f"global_step_{args.steps}", "actor", "huggingface"), final_model)
    plot(rows, os.path.join(out, "relift.png"))
    summary = summarize(rows, time.time() - start)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print("\n=== ReLIFT CPU demo ===")
    print(f"steps                    {summary['steps']}")
    print(f"mean reward              {summary['reward_first_quarter']:.3f} (first quarter) -> "
          f"{summary['reward_last_quarter']:.3f} (last quarter)")
    print(f"hardest questions seen   {summary['hardest_questions_seen']}")
    print(f"supervised updates       {summary['supervised_updates']} "
          f"(demonstration NLL {summary['sft_loss_first']:.3f} -> {summary['sft_loss_last']:.3f})")
    print(f"demonstrations used      {summary['demos_used_frac']:.1%} of the training questions")
    print(f"wall time                {summary['wall_time_s']:.0f} s ({summary['seconds_per_step']:.1f} s per step)")
    print(f"outputs                  {out}/{{metrics.jsonl, relift.png, summary.json, final_model/}}")


if __name__ == "__main__":
    main()
