#!/usr/bin/env bash
# `daug plugins list` and `daug run` with a broken library on --plugin-path: one message naming the file, exit 1
# (a truncated library used to kill daug with SIGBUS, exit 135, no message). Args: DAUG GOOD_PLUGIN CONFIG
set -uo pipefail
daug=$1
good=$2
cfg=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/trunc" "$tmp/garbage"
head -c $(( $(stat -c %s "$good") / 2 )) "$good" > "$tmp/trunc/libdaug-plugin-trunc.so"
printf 'this is not a library\n' > "$tmp/garbage/libdaug-plugin-garbage.so"
fail=0
check() {  # check NAME EXPECTED_TEXT daug-args...
  local name=$1 want=$2
  shift 2
  local out rc
  out=$("$daug" "$@" 2>&1)
  rc=$?
  if [[ $rc -ne 1 ]] || ! grep -qF -- "$want" <<< "$out"; then
    echo "FAIL $name: exit $rc (expected 1), expected '$want' in:"
    echo "$out"
    fail=1
  else
    echo "ok $name: $out"
  fi
}
check trunc_list "$tmp/trunc/libdaug-plugin-trunc.so: not a loadable plugin library" --plugin-path "$tmp/trunc" plugins list
check trunc_run "$tmp/trunc/libdaug-plugin-trunc.so: not a loadable plugin library" --plugin-path "$tmp/trunc" run "$cfg"
check garbage_list "$tmp/garbage/libdaug-plugin-garbage.so: not a loadable plugin library: expected the ELF signature" \
  --plugin-path "$tmp/garbage" plugins list
check missing_dir "--plugin-path $tmp/nope: no such plugin directory" --plugin-path "$tmp/nope" plugins list
exit $fail
