#!/usr/bin/env bash
# Shared body of ray_start_head.sh and ray_join.sh: one Ray node of a multi-node run, in the foreground.
# It runs until stopped: Ctrl-C, or `kill <pid>` of this script, drains and ends this node's Ray
# processes and nothing else (never `ray stop`: it stops every Ray instance on the machine).
#   bash examples/ray_node.sh head|join [extra `ray start` options]
# Environment:
#   HEAD_ADDR      the head's address; required to join, defaults to NODE_ADDR on the head
#   NODE_ADDR      this node's address; default: the source address of this machine's route to HEAD_ADDR
#                  (on the head, of its default route). Set it when the nodes share another interface.
#   RAY_PORT       the head's port (6379)
#   GPUS_PER_NODE  GPUs Ray may use here; default: every GPU nvidia-smi lists. On a machine without
#                  one, that many logical GPU slots for relift's CPU path (default 1).
#   RAY_AUTH_TOKEN_PATH  the cluster's token file (default ~/.ray/auth_token). The head creates it if it
#                  is missing; every node and the training driver need the same token (copy the file,
#                  or put it on a shared filesystem and point RAY_AUTH_TOKEN_PATH at it).
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
set -euo pipefail
role=${1:?usage: ray_node.sh head|join [ray start options]}
shift
PORT=${RAY_PORT:-6379}

route_source() {  # the address this machine sends from to reach $1 (no packet is sent)
    ip -o route get "$1" 2>/dev/null | sed -n 's/.* src \([0-9a-f.:]*\).*/\1/p'
}

# Ray 2.60 clusters use token authentication; an explicit address never turns it on by itself.
export RAY_AUTH_MODE=token
TOKEN_FILE=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
if [ -z "${RAY_AUTH_TOKEN:-}" ]; then
    if [ ! -s "$TOKEN_FILE" ]; then
        if [ "$role" != head ]; then
            echo "no Ray auth token at $TOKEN_FILE: copy the head's token file there, or set RAY_AUTH_TOKEN_PATH" >&2
            exit 1
        fi
        mkdir -p "$(dirname "$TOKEN_FILE")"
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32), end="")' > "$TOKEN_FILE")
        echo "[relift] created the cluster's auth token: $TOKEN_FILE (every node and the driver need it)"
    fi
    export RAY_AUTH_TOKEN_PATH=$TOKEN_FILE
fi

case $role in
    head) NODE_ADDR=${NODE_ADDR:-$(route_source 8.8.8.8)}; HEAD_ADDR=${HEAD_ADDR:-$NODE_ADDR}
          where=(--head --port="$PORT") ;;
    join) : "${HEAD_ADDR:?set HEAD_ADDR to the address of the head node}"; NODE_ADDR=${NODE_ADDR:-$(route_source "$HEAD_ADDR")}
          where=(--address="$HEAD_ADDR:$PORT") ;;
    *) echo "usage: ray_node.sh head|join" >&2; exit 2 ;;
esac
NODE_ADDR=${NODE_ADDR:-$(hostname -I | awk '{print $1}')}

if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    resources=(--num-gpus="${GPUS_PER_NODE:-$(nvidia-smi -L | wc -l)}")
else
    # Logical slots, as relift.main's own CPU Ray: 1 "GPU" per training process, 4 CPUs each + 8.
    gpus=${GPUS_PER_NODE:-1}
    resources=(--num-gpus="$gpus" --num-cpus=$((4 * gpus + 8)))
fi

echo "[relift] Ray $role node at $NODE_ADDR (set NODE_ADDR if the nodes reach each other on another interface)"
if [ "$role" = head ]; then
    echo "[relift] join with: HEAD_ADDR=$HEAD_ADDR bash examples/ray_join.sh; train here with: RAY_ADDRESS=$HEAD_ADDR:$PORT"
fi
echo "[relift] stop this node with Ctrl-C or: kill $$"
ray start "${where[@]}" --node-ip-address="$NODE_ADDR" "${resources[@]}" --block "$@" &
ray_pid=$!
# `ray start --block` drains and ends its node on SIGTERM (a background job of a script ignores SIGINT).
stopping=0
trap 'stopping=1; kill -TERM "$ray_pid" 2> /dev/null' INT TERM
status=0
while kill -0 "$ray_pid" 2> /dev/null; do wait "$ray_pid" || status=$?; done
[ "$stopping" = 1 ] && status=0  # asked to stop: ray start exits 1 after draining
# `ray start` records the cluster for later `ray.init()` calls on this machine, and only `ray stop`
# removes the record: left behind, it sends them to a cluster that is gone.
address_file=${RAY_TMPDIR:-/tmp}/ray/ray_current_cluster
if [ "$(cat "$address_file" 2> /dev/null)" = "$HEAD_ADDR:$PORT" ]; then rm -f "$address_file"; fi
exit "$status"
