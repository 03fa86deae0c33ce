#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-7B over 2 nodes x 8 GPUs. First bring the Ray cluster up (README, Multi-node):
#   head:   bash examples/ray_start_head.sh        other node:   HEAD_ADDR=<head address> bash examples/ray_join.sh
# then run this script on the head with RAY_ADDRESS=<head address>:6379.
# The paper's interleaving (INTERLEAVE=paper); INTERLEAVE= (empty) trains with relift's stabilizers instead.
: "${RAY_ADDRESS:?set RAY_ADDRESS to address:port of the Ray head (ray_start_head.sh prints it)}"
export RAY_ADDRESS RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-Math-7B-16k-think} EXP=${EXP:-math_7b_relift_2nodes} NNODES=2 \
    INTERLEAVE=${INTERLEAVE-paper} exec bash "$(dirname "$0")/run_relift.sh" "$@"
