#!/usr/bin/env bash
# Shared body of every GPU example: ReLIFT (or, with RELIFT=false, the RL-only baseline) with the
# settings of relift/config/relift_trainer.yaml (the paper's scripts', plus relift's stabilizers unless
# INTERLEAVE=paper), on NNODES x GPUS_PER_NODE GPUs.
#   MODEL=/path/to/Qwen2.5-Math-7B-16k-think EXP=math_7b_relift bash examples/run_relift.sh [overrides...]
# Logs to the console and TensorBoard (no account needed); W&B: add trainer.logger='[console,wandb]'
# with WANDB_API_KEY set (or after `wandb login`, or with WANDB_MODE=offline).
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
set -euo pipefail
: "${MODEL:?set MODEL to a local Hugging Face checkpoint (a -think chat template, see README)}"
: "${EXP:?set EXP, the experiment name}"
TRAIN_FILES=${TRAIN_FILES:-dataset/openr1.parquet}
VAL_FILES=${VAL_FILES:-dataset/relift_valid.parquet}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
RELIFT=${RELIFT:-true}
# interleave=paper: the paper's interleaving (relift/config/interleave/paper.yaml); empty: relift's stabilizers.
INTERLEAVE=${INTERLEAVE-}
cd "$(dirname "$0")/.."

python3 -u -m relift.main \
    actor_rollout_ref.model.path="$MODEL" \
    data.train_files="$TRAIN_FILES" \
    data.val_files="$VAL_FILES" \
    relift.enable="$RELIFT" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    trainer.experiment_name="$EXP" \
    ${INTERLEAVE:+interleave="$INTERLEAVE"} \
    "$@"
