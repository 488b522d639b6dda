#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU.
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options]
# Environment: GPUS (total, default 4), GPUS_PER_NODE (default 4),
# CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options), MASTER_PORT
# (default 29500; give concurrent jobs on one node different ports).
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [ "$#" -gt 0 ] && [[ "$1" != -* ]]; then
    WORK_DIR_ARGS=(--work-dir "$1")
    shift
fi
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
TOOLS=$(dirname "$0")
# PYTHON: the environment variable, else `python` on PATH; must have torch.
. "$TOOLS/check_python.sh"

export MASTER_PORT=${MASTER_PORT:-29500}
# SRUN_ARGS is split on spaces on purpose: it holds several srun options.
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$TOOLS/train.py" "$CONFIG" --launcher slurm \
    ${WORK_DIR_ARGS[@]+"${WORK_DIR_ARGS[@]}"} "$@"
