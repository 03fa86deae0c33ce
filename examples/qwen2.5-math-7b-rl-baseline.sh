#!/usr/bin/env bash
# The paper's RL-only baseline on Qwen2.5-Math-7B: GRPO without the supervised updates, with PPO
# clipping (0.2) and gradient clip 1.0 as in its train_rl.sh.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
MODEL=$(default_model Qwen2.5-Math-7B-16k-think) || exit 2
export MODEL EXP=${EXP:-math_7b_rl} RELIFT=false
exec bash "$(dirname "$0")/run_relift.sh" \
    actor_rollout_ref.actor.clip_ratio_low=0.2 \
    actor_rollout_ref.actor.clip_ratio_high=0.2 \
    actor_rollout_ref.actor.clip_ratio_c=3.0 \
    actor_rollout_ref.actor.optim.clip_grad=1.0 \
    "$@"
