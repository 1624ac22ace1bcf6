#!/usr/bin/env bash
# Runs the same aloe command on every worker of a Cloud TPU VM slice (pod).
#
#   launch/tpu_pod.sh TPU_NAME ZONE [aloe.main flags...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b --config=configs/clevrer.py \
#       --workdir=/mnt/shared/aloe --config.data.root=/mnt/shared/clevrer_latents
#
# Every worker runs, through `gcloud compute tpus tpu-vm ssh --worker=all`,
#
#   cd $REMOTE_DIR && $REMOTE_PYTHON -m aloe.main --distributed [flags...]
#
# With no addresses, jax.distributed.initialize() reads the coordinator, the
# process count and this worker's index from the TPU VM metadata. The flags are
# quoted for the remote shell, so values with spaces survive. If one worker
# dies, the JAX coordination service stops the others (heartbeat timeout).
#
# Environment:
#   PROJECT        GCP project (default: gcloud's configured project).
#   REMOTE_DIR     the repository on every worker (default: ~/aloe); inserted
#                  verbatim into the remote command, so ~ and $VARS expand there.
#   REMOTE_PYTHON  the interpreter on the workers (default: python3).
#   REMOTE_SETUP   shell commands run first on every worker, e.g.
#                  "source ~/venv/bin/activate" (inserted verbatim).
#   LOG_DIR        if set, each worker's output goes to a file in LOG_DIR
#                  (gcloud --output-directory) instead of the terminal.
#   DRY_RUN=1      print the gcloud command (shell-quoted) instead of running it.

set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 TPU_NAME ZONE [aloe.main flags...]" >&2
  exit 2
fi
tpu_name="$1"
zone="$2"
shift 2

remote_dir="${REMOTE_DIR:-~/aloe}"
remote_python="${REMOTE_PYTHON:-python3}"

remote_cmd="cd ${remote_dir} && "
if [[ -n "${REMOTE_SETUP:-}" ]]; then
  remote_cmd+="${REMOTE_SETUP} && "
fi
remote_cmd+="$(printf '%q' "$remote_python") -m aloe.main --distributed"
for arg in "$@"; do
  remote_cmd+=" $(printf '%q' "$arg")"
done

gcloud_cmd=(gcloud compute tpus tpu-vm ssh "$tpu_name" "--zone=${zone}" --worker=all
            "--command=${remote_cmd}")
if [[ -n "${PROJECT:-}" ]]; then
  gcloud_cmd+=("--project=${PROJECT}")
fi
if [[ -n "${LOG_DIR:-}" ]]; then
  mkdir -p "$LOG_DIR"
  gcloud_cmd+=("--output-directory=${LOG_DIR}")
fi

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q ' "${gcloud_cmd[@]}"
  echo
  exit 0
fi
exec "${gcloud_cmd[@]}"
