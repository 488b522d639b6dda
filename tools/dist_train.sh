#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (or per CPU
# process on a machine without CUDA: gloo backend, see docs/training.md).
#   tools/dist_train.sh CONFIG GPUS [train.py options]
# Several nodes: run it on each node with NNODES, NODE_RANK, MASTER_ADDR
# (rank 0's host) and PORT set the same way everywhere except NODE_RANK.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS=$(dirname "$0")
# PYTHON: the environment variable, else `python` on PATH; must have torch.
. "$TOOLS/check_python.sh"

PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
