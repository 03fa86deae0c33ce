#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-7B over 2 nodes x 8 GPUs. First bring the Ray cluster up (README, Multi-node):
#   head:   bash examples/ray_start_head.sh        other node:   HEAD_ADDR=<head address> bash examples/ray_join.sh
# then run this script on the head with RAY_ADDRESS=<head address>:6379.
# The paper's interleaving (INTERLEAVE=paper); INTERLEAVE= (empty) trains with relift's stabilizers instead.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
: "${RAY_ADDRESS:?set RAY_ADDRESS to address:port of the Ray head (ray_start_head.sh prints it)}"
export RAY_ADDRESS RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
MODEL=$(default_model Qwen2.5-Math-7B-16k-think) || exit 2
export MODEL EXP=${EXP:-math_7b_relift_2nodes} NNODES=2 INTERLEAVE=${INTERLEAVE-paper}
exec bash "$(dirname "$0")/run_relift.sh" "$@"
