#!/usr/bin/env bash
# One smoke run: `daug run CONFIG` from an empty runs/cache directory under WORK_DIR; it must exit 0 and its output
# must match every `# smoke-expect: <ERE>` line of the config. Args: DAUG_BINARY CONFIG WORK_DIR
set -euo pipefail
daug=$1; cfg=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
"$daug" run "$cfg" --set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"" > "$work/out.txt" 2>&1 \
  || { cat "$work/out.txt"; echo "smoke: daug run $cfg failed"; exit 1; }
status=0
while IFS= read -r re; do
  grep -Eq -- "$re" "$work/out.txt" || { echo "smoke: the output does not match '$re'"; status=1; }
done < <(sed -n 's/^# smoke-expect: //p' "$cfg")
[ "$status" -eq 0 ] || { cat "$work/out.txt"; exit 1; }
tail -n 5 "$work/out.txt"
echo "smoke OK: $cfg"
