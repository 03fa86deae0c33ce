#!/usr/bin/env bash
# Start the Ray head of a multi-node run on this machine. HEAD_ADDR defaults to this host's first address.
set -euo pipefail
HEAD_ADDR=${HEAD_ADDR:-$(hostname -I | awk '{print $1}')}
ray stop --force
ray start --head --node-ip-address="$HEAD_ADDR" --port=6379 --num-gpus="${GPUS_PER_NODE:-8}"
echo "workers join with: HEAD_ADDR=$HEAD_ADDR bash examples/ray_join.sh"
