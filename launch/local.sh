#!/usr/bin/env bash
# Runs N cooperating aloe processes on this machine (JAX on CPU, gloo collectives).
#
#   launch/local.sh N [aloe.main flags...]
#   DEVICES_PER_PROCESS=2 launch/local.sh 2 --config=configs/test.py \
#       --workdir=/tmp/aloe_2proc --config.data.root=/tmp/toy
#
# Process i runs `python -m aloe.main --coordinator_address=localhost:PORT
# --num_processes=N --process_id=i [flags...]` from the repository root. The
# script waits for all of them; when one fails it stops the others (SIGTERM,
# then SIGKILL after KILL_GRACE_SECONDS) and exits with the failed process's
# status. A process that exits with 143 stopped on request after saving a
# checkpoint (a preemption notice; the others stop at the same step), which is
# not a failure: the script waits for the others and exits with 143, so a
# scheduler requeues the job and the same command resumes it. Ctrl-C / SIGTERM
# to the script are passed on to every process.
#
# Environment:
#   DEVICES_PER_PROCESS  CPU devices each process simulates (default 1), through
#                        XLA_FLAGS=--xla_force_host_platform_device_count.
#   PORT                 coordinator port (default: a free one).
#   LOG_DIR              if set, process i writes to $LOG_DIR/process_i.log instead
#                        of the terminal.
#   PYTHON               interpreter. Default: the active virtual environment's
#                        ($VIRTUAL_ENV/bin/python), else the repository's .venv
#                        (made by the README's set-up), else python3. The script
#                        says which one it uses.
#   KILL_GRACE_SECONDS   seconds between SIGTERM and SIGKILL on failure (default 10).
#   JAX_PLATFORMS        default cpu; set it to run on local accelerators instead.

set -uo pipefail

usage() {
  echo "usage: $0 NUM_PROCESSES [aloe.main flags...]" >&2
  exit 2
}

[[ $# -ge 1 && "$1" =~ ^[1-9][0-9]*$ ]] || usage
num_processes="$1"
shift

devices="${DEVICES_PER_PROCESS:-1}"
[[ "$devices" =~ ^[1-9][0-9]*$ ]] || { echo "$0: DEVICES_PER_PROCESS must be a positive integer, got '$devices'" >&2; exit 2; }
grace="${KILL_GRACE_SECONDS:-10}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON" python_from="\$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" && -x "${VIRTUAL_ENV}/bin/python" ]]; then
  python="${VIRTUAL_ENV}/bin/python" python_from="the active virtual environment"
elif [[ -x "${repo}/.venv/bin/python" ]]; then
  python="${repo}/.venv/bin/python" python_from="the repository's .venv"
else
  python="python3" python_from="no \$PYTHON, virtual environment or .venv found"
fi
echo "$0: using ${python} (${python_from})" >&2

if [[ -n "${PORT:-}" ]]; then
  port="$PORT"
else
  port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')" \
    || { echo "$0: could not pick a free port with $python; set PORT" >&2; exit 2; }
fi
if [[ -n "${LOG_DIR:-}" ]]; then
  mkdir -p "$LOG_DIR" || exit 2
fi

export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export XLA_FLAGS="${XLA_FLAGS:+${XLA_FLAGS} }--xla_force_host_platform_device_count=${devices}"

pids=()

stop_all() {
  # Stops every process still running: SIGTERM (they checkpoint and exit), then SIGKILL.
  local pid deadline
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  deadline=$((SECONDS + grace))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null
  done
}

on_signal() {
  echo "$0: interrupted; stopping all processes" >&2
  stop_all
  wait
  exit 130
}
trap on_signal INT TERM

cd "$repo" || exit 2
for ((i = 0; i < num_processes; i++)); do
  cmd=("$python" -m aloe.main "--coordinator_address=localhost:${port}"
       "--num_processes=${num_processes}" "--process_id=${i}" "$@")
  if [[ -n "${LOG_DIR:-}" ]]; then
    "${cmd[@]}" >"${LOG_DIR}/process_${i}.log" 2>&1 &
  else
    "${cmd[@]}" &
  fi
  pids+=("$!")
done
echo "$0: started ${num_processes} processes (pids ${pids[*]}), coordinator localhost:${port}," \
     "${devices} CPU device(s) each" >&2

STOPPED_STATUS=143  # aloe.checkpointing.STOPPED_EXIT_STATUS: stopped after a checkpoint.
stopped=0
running=("${pids[@]}")
while ((${#running[@]} > 0)); do
  finished=""
  wait -n -p finished "${running[@]}"
  status=$?
  if [[ -z "$finished" ]]; then
    echo "$0: wait failed with status ${status}; stopping all processes" >&2
    stop_all
    exit 1
  fi
  for ((i = 0; i < num_processes; i++)); do
    [[ "${pids[i]}" == "$finished" ]] && index=$i
  done
  if ((status == STOPPED_STATUS)); then
    ((stopped)) || echo "$0: process ${index} (pid ${finished}) stopped on request after" \
      "saving a checkpoint; waiting for the others to stop at the same step" >&2
    stopped=1
  elif ((status != 0)); then
    echo "$0: process ${index} (pid ${finished}) failed with status ${status};" \
         "stopping the others" >&2
    stop_all
    wait
    exit "$status"
  fi
  still=()
  for pid in "${running[@]}"; do
    [[ "$pid" != "$finished" ]] && still+=("$pid")
  done
  running=("${still[@]}")
done
if ((stopped)); then
  echo "$0: stopped after a checkpoint; run the same command again to resume" >&2
  exit "$STOPPED_STATUS"
fi
echo "$0: all ${num_processes} processes finished" >&2
exit 0
