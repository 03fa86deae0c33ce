#!/usr/bin/env bash
# SFT->RL on Qwen2.5-Math-7B, the strongest baseline in a 2026 re-evaluation of SFT+RL hybrids (arXiv
# 2604.23747): the SFT-only baseline (examples/qwen2.5-math-7b-sft-baseline.sh: 3 epochs on the
# demonstrations of the prepared file), then the RL-only baseline (examples/qwen2.5-math-7b-rl-baseline.sh:
# the same data, validation and schedule) from its final model. OUT/summary.json adds up both stages'
# compute (relift.accounting).
#   MODEL_ROOT=/models bash examples/qwen2.5-math-7b-sft-rl-baseline.sh [RL-stage overrides...]
#   DRY_RUN=1 ...   checks both stages; the RL stage is checked on the base model, its SFT model not yet trained.
# Rerunning the same command resumes: a finished SFT stage trains nothing more, the RL stage resumes from its
# latest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${MODEL:-${MODEL_ROOT:?set MODEL_ROOT (or MODEL)}/Qwen2.5-Math-7B-16k-think}
OUT=${OUT:-train_results/SFT_RL/math_7b_sft_rl}

OUT="$OUT/sft" MODEL="$BASE" bash examples/qwen2.5-math-7b-sft-baseline.sh
RL_MODEL="$OUT/sft/final"
[ -n "${DRY_RUN:-}" ] && RL_MODEL="$BASE"
MODEL="$RL_MODEL" EXP=${EXP:-math_7b_sft_rl} bash examples/qwen2.5-math-7b-rl-baseline.sh \
    trainer.default_local_dir="$OUT/rl" "$@"
[ -n "${DRY_RUN:-}" ] && exit 0
python3 -m relift.accounting --arm sft_rl --out "$OUT/summary.json" "$OUT/sft/summary.json" "$OUT/rl/summary.json"
