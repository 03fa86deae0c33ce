#!/usr/bin/env bash
# Join this machine to the Ray cluster whose head runs at HEAD_ADDR (see ray_start_head.sh).
set -euo pipefail
: "${HEAD_ADDR:?set HEAD_ADDR to the head node's address}"
ray stop --force
ray start --address="$HEAD_ADDR:6379" --num-gpus="${GPUS_PER_NODE:-8}"
