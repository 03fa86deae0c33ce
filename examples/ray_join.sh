#!/usr/bin/env bash
# Join this machine to the Ray cluster whose head runs at HEAD_ADDR (ray_start_head.sh), in the
# foreground; needs the cluster's auth token (see ray_node.sh). Ctrl-C or `kill <pid>` leaves the cluster.
exec bash "$(dirname "$0")/ray_node.sh" join "$@"
