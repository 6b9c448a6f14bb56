#!/usr/bin/env bash
# The prefetching loader changes no result (issue 10): configs/smoke/clip_nih.toml (train_classifier,
# train_diffusion, heatmaps, train_clip; then evaluate and report) run with loader_workers = 0 (synchronous) and with 2 workers, prefetch 3,
# images not cached (every step decodes), 8 images per split and 5 steps per training stage so several batches are
# in flight. Trained weights, checkpoints, losses.csv (without its wall-time column) and every heatmap .npy must be
# byte-identical. Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
cfg="$src/configs/smoke/clip_nih.toml"
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && cat "$2"; exit 1; }
run() {  # run NAME WORKERS
  local sets=(--set "run.runs_dir=\"$work/$1/runs\"" --set "run.cache_dir=\"$work/$1/cache\"" --set data.max_per_split=8
              --set train_clip.max_steps=5 --set train_clip.epochs=3)
  for s in train_classifier train_diffusion; do
    sets+=(--set "$s.steps=5" --set "$s.batch_size=3" --set "$s.cache_images=false")
  done
  for s in train_classifier train_diffusion heatmaps train_clip; do
    sets+=(--set "$s.loader_workers=$2" --set "$s.prefetch=3")
  done
  "$daug" run "$cfg" "${sets[@]}" > "$work/$1.txt" 2>&1 || fail "daug run with loader_workers = $2" "$work/$1.txt"
}
run sync 0
run workers 2
# Cache directories are <table>-<key>; the key includes loader_workers (like every stage option), so files are
# matched by table and relative path.
list() {  # list CACHE_DIR: "<table>/<file>" for every compared file
  (cd "$1" && find . \( -name '*.npy' -o -name '*.safetensors' -o -name 'losses.csv' \) -printf '%P\n' |
    sed -E 's#^([a-z_]+)-[0-9a-f]+/#\1/#' | sort)
}
real() { echo "$1"/"$(echo "$2" | cut -d/ -f1)"-*/"$(echo "$2" | cut -d/ -f2-)"; }
files=$(list "$work/sync/cache")
n_npy=$(echo "$files" | grep -c '\.npy$' || true)
[ "$n_npy" -ge 24 ] || fail "expected >= 24 heatmaps in the synchronous run, found $n_npy"
echo "$files" | grep -q '^train_clip/losses.csv$' || fail "no train_clip losses.csv in the synchronous run"
other=$(list "$work/workers/cache")
[ "$files" = "$other" ] || fail "the two runs wrote different files"$'\n'"$(diff <(echo "$files") <(echo "$other"))"
for f in $files; do
  a=$(real "$work/sync/cache" "$f"); b=$(real "$work/workers/cache" "$f")
  [ -f "$a" ] && [ -f "$b" ] || fail "$f: not exactly one file per run ($a, $b)"
  if [[ $f == *losses.csv ]]; then
    # elapsed_s (wall time) differs between runs by nature; every other column must match.
    col=$(head -1 "$a" | tr ',' '\n' | grep -n '^elapsed_s$' | cut -d: -f1)
    cmp <(cut -d, -f"$col" --complement "$a") <(cut -d, -f"$col" --complement "$b") \
      || fail "$f differs between loader_workers 0 and 2"
  else
    cmp "$a" "$b" || fail "$f differs between loader_workers 0 and 2"
  fi
done
echo "loader_workers 0 and 2: $(echo "$files" | wc -l) files identical ($n_npy heatmaps)"
