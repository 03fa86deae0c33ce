#!/usr/bin/env bash
# Start the head of a multi-node Ray cluster on this machine, in the foreground (see ray_node.sh for the
# variables; Ctrl-C or `kill <pid>` stops this node only). Then join the others with ray_join.sh and
# run the training script on the head with RAY_ADDRESS=<head address>:6379.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
exec bash "$(dirname "$0")/ray_node.sh" head "$@"
