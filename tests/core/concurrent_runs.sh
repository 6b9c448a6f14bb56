#!/usr/bin/env bash
# Two `daug run` of the same config started together in one directory: each stage body runs once. The second process
# waits on the stage directory's lock, says so (naming the stage), then reuses the finished output.
# Args: DAUG FIXTURE_PLUGIN_DIR
set -uo pipefail
daug=$1
fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/p.toml" <<TOML
[run]
name = "concurrent"
stages = ["first", "second"]
runs_dir = "$tmp/runs"
cache_dir = "$tmp/cache"
[first]
plugin = "count"
value = 1
sleep_ms = 3000
[second]
plugin = "count"
value = 2
upstream = "first"
sleep_ms = 3000
[scale]
plugin = "scale"
TOML
cd "$tmp"
"$daug" --plugin-path "$fx" run p.toml > a.log 2>&1 &
a=$!
"$daug" --plugin-path "$fx" run p.toml > b.log 2>&1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
fail=0
if [[ $ra -ne 0 || $rb -ne 0 ]]; then echo "exit codes $ra $rb (expected 0 0)"; fail=1; fi
dirs=("$tmp"/cache/*/)
[[ ${#dirs[@]} -eq 2 ]] || { echo "expected 2 stage directories, found: ${dirs[*]}"; fail=1; }
for d in "${dirs[@]}"; do
  n=$(wc -l < "$d/runs.txt")
  [[ $n -eq 1 ]] || { echo "$d: the stage body ran $n times (expected once)"; fail=1; }
done
grep -h "stage \[first\]: another daug process is running this stage" a.log b.log \
  || { echo "no process said it was waiting for [first]"; fail=1; }
grep -h "finished by the other process; reusing" a.log b.log || { echo "no process reused the other's output"; fail=1; }
grep -q "value 21" a.log && grep -q "value 21" b.log || { echo "both runs must report the result"; fail=1; }
[[ $fail -eq 0 ]] || { echo "--- a.log"; cat a.log; echo "--- b.log"; cat b.log; }
exit $fail
