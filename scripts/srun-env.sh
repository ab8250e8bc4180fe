#!/usr/bin/env bash
# Starts N copies of a command with the environment srun gives its tasks on one node (SLURM_PROCID, SLURM_NTASKS,
# SLURM_LOCALID, SLURM_NTASKS_PER_NODE, SLURM_TASKS_PER_NODE, SLURM_NODEID) plus MASTER_ADDR/MASTER_PORT, for
# machines without Slurm. It checks NVRAR's Slurm path: rank and local rank read from SLURM_*, and, as MPI is not
# started by srun here (each process is an MPI singleton), the fallback to the NCCL_COMM_ID bootstrap.
#   bash scripts/srun-env.sh N command [args...]      exit status: the first non-zero one of the tasks
set -uo pipefail
n=$1; shift
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29517}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
pids=()
for ((i = 0; i < n; ++i)); do
  SLURM_PROCID=$i SLURM_NTASKS=$n SLURM_LOCALID=$i SLURM_NTASKS_PER_NODE=$n SLURM_TASKS_PER_NODE="$n" SLURM_NODEID=0 \
    "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || { s=$?; [ $rc -eq 0 ] && rc=$s; }; done
exit $rc
