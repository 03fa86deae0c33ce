#!/usr/bin/env bash
# Join this machine to the Ray cluster whose head runs at HEAD_ADDR (ray_start_head.sh), in the
# foreground; needs the cluster's auth token (see ray_node.sh). Ctrl-C or `kill <pid>` leaves the cluster.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
exec bash "$(dirname "$0")/ray_node.sh" join "$@"
