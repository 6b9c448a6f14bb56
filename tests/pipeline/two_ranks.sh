#!/usr/bin/env bash
# Sourced by the distributed pipeline tests: `two_ranks NAME ARGS...` runs `$daug ARGS...` as ranks 0 and 1 of a
# 2-process launch on localhost, the environment set as torchrun sets it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
# MASTER_PORT on a free port), one LibTorch thread each, each bounded by `timeout`. Logs: $work/NAME.rank{0,1}.txt.
# Fails (exit 1, both logs printed) unless both ranks exit 0. Needs $daug and $work.
# Also: `fail MSG [LOG]` (prints, exits 1) and `dirs NAME` (sets the array dirs to --set runs_dir/cache_dir under
# $work/NAME).
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && cat "$2"; exit 1; }
dirs() { dirs=(--set "run.runs_dir=\"$work/$1/runs\"" --set "run.cache_dir=\"$work/$1/cache\""); }
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
two_ranks() {
  local name=$1; shift
  local port; port=$(free_port)
  local pids=() r rc=0
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
      timeout -k 10 "${DAUG_RANK_TIMEOUT:-300}" "$daug" "$@" > "$work/$name.rank$r.txt" 2>&1 &
    pids+=($!)
  done
  for r in 0 1; do
    wait "${pids[$r]}" || { echo "rank $r of '$name' exited with status $? (124 = timeout)"; rc=1; }
  done
  if [ "$rc" -ne 0 ]; then
    for r in 0 1; do echo "--- $name rank $r:"; tail -n 40 "$work/$name.rank$r.txt"; done
    exit 1
  fi
}
