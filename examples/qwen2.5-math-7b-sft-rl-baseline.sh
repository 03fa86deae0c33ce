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
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=$(default_model Qwen2.5-Math-7B-16k-think) || exit 2
OUT=${OUT:-train_results/SFT_RL/math_7b_sft_rl}

OUT="$OUT/sft" MODEL="$BASE" bash examples/qwen2.5-math-7b-sft-baseline.sh
RL_MODEL="$OUT/sft/final"
dry_run && RL_MODEL="$BASE"
MODEL="$RL_MODEL" EXP=${EXP:-math_7b_sft_rl} bash examples/qwen2.5-math-7b-rl-baseline.sh \
    trainer.default_local_dir="$OUT/rl" "$@"
dry_run && exit 0
python3 -m relift.accounting --arm sft_rl --out "$OUT/summary.json" "$OUT/sft/summary.json" "$OUT/rl/summary.json"
