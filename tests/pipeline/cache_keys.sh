#!/usr/bin/env bash
# The stage cache is keyed on what each stage consumes (issue 8), checked through the `daug` CLI on
# configs/smoke/heatmaps_nih.toml with a private copy of the embedded data:
#   1. a sampling option of the generator (timestep_respacing) reuses both trained models, re-runs heatmaps;
#   2. an architecture option of the generator (num_channels) retrains the models;
#   3. editing labels.csv in place invalidates every stage that used the data;
#   4. a misspelt table (--set guidanse.scale=3, a [guidanse] table, a [sweep] over guidanse.scale) is an error naming
#      where it was written and suggesting [guidance]; exit code non-zero;
#   5. effective.toml (every option, defaults included) is written to the run directory.
# Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"; cd "$work"
cp -r "$src/examples/data/nih-cxr14-sample" "$work/data"
cfg="$src/configs/smoke/heatmaps_nih.toml"
sets=(--set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"" --set "data.root=\"$work/data\"")
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && cat "$2"; exit 1; }
ran()    { grep -q "stage \[$1\] .* -> " "$2"; }
cached() { grep -q "stage \[$1\] .*: cached at" "$2"; }

"$daug" run "$cfg" "${sets[@]}" > "$work/1.txt" 2>&1 || fail "first run" "$work/1.txt"
for s in train_classifier train_diffusion heatmaps; do ran $s "$work/1.txt" || fail "$s did not run" "$work/1.txt"; done
eff=$(ls "$work"/runs/*/effective.toml | head -1)
grep -q "^timestep_respacing = 'ddim10'" "$eff" || fail "effective.toml lacks the generator's respacing" "$eff"
grep -q '^clip_denoised = true' "$eff" || fail "effective.toml lacks a default the config never writes" "$eff"

# 1. sampling option: both models cached, heatmaps re-run
"$daug" run "$cfg" "${sets[@]}" --set 'generator.timestep_respacing="ddim20"' > "$work/2.txt" 2>&1 || fail "respacing run" "$work/2.txt"
cached train_classifier "$work/2.txt" || fail "a sampling option retrained the classifier" "$work/2.txt"
cached train_diffusion "$work/2.txt" || fail "a sampling option retrained the diffusion model" "$work/2.txt"
ran heatmaps "$work/2.txt" || fail "a sampling option reused stale heatmaps" "$work/2.txt"
# the same for guidance scale and eta (options of other tables / marked sampling-only)
"$daug" run "$cfg" "${sets[@]}" --set guidance.scale=3 --set generator.eta=0.5 > "$work/2b.txt" 2>&1 || fail "scale run" "$work/2b.txt"
cached train_diffusion "$work/2b.txt" && cached train_classifier "$work/2b.txt" || fail "guidance/eta retrained a model" "$work/2b.txt"
ran heatmaps "$work/2b.txt" || fail "guidance scale reused stale heatmaps" "$work/2b.txt"

# 2. architecture option: retrain
"$daug" run "$cfg" "${sets[@]}" --set generator.num_channels=64 > "$work/3.txt" 2>&1 || fail "architecture run" "$work/3.txt"
ran train_diffusion "$work/3.txt" || fail "an architecture change reused the trained diffusion model" "$work/3.txt"
ran heatmaps "$work/3.txt" || fail "an architecture change reused the heatmaps" "$work/3.txt"

# 3. labels.csv edited in place: nothing that read the data is reused
"$daug" run "$cfg" "${sets[@]}" > "$work/4a.txt" 2>&1 || fail "baseline re-run" "$work/4a.txt"
for s in train_classifier train_diffusion heatmaps; do cached $s "$work/4a.txt" || fail "$s not cached on an identical re-run" "$work/4a.txt"; done
# invert the "No Finding" column in place (the example edit)
col=$(head -1 "$work/data/labels.csv" | tr ',' '\n' | grep -n '^No Finding$' | cut -d: -f1)
awk -F, -v c="$col" 'BEGIN { OFS = "," } NR > 1 { $c = 1 - $c } { print }' "$work/data/labels.csv" > "$work/labels.tmp"
mv "$work/labels.tmp" "$work/data/labels.csv"
"$daug" run "$cfg" "${sets[@]}" > "$work/4b.txt" 2>&1 || fail "run after editing labels.csv" "$work/4b.txt"
for s in train_classifier train_diffusion heatmaps; do ran $s "$work/4b.txt" || fail "$s reused a cache built from the old labels.csv" "$work/4b.txt"; done

# 4. misspelt tables
if "$daug" run "$cfg" "${sets[@]}" --set guidanse.scale=3 > "$work/5.txt" 2>&1; then fail "--set guidanse.scale exited 0" "$work/5.txt"; fi
grep -q "table \[guidanse\] is not used" "$work/5.txt" || fail "no unused-table error for --set guidanse" "$work/5.txt"
grep -q "did you mean \[guidance\]" "$work/5.txt" || fail "no did-you-mean for guidanse" "$work/5.txt"
printf 'schema_version = 1\nimports = ["%s"]\n\n[guidanse]\nscale = 3.0\n' "$cfg" > "$work/typo.toml"
if "$daug" run "$work/typo.toml" "${sets[@]}" > "$work/6.txt" 2>&1; then fail "a [guidanse] table exited 0" "$work/6.txt"; fi
grep -q "typo.toml:4:1: table \[guidanse\] is not used.*did you mean \[guidance\]" "$work/6.txt" || fail "no file:line for [guidanse]" "$work/6.txt"
printf 'schema_version = 1\nimports = ["%s"]\n\n[sweep]\n"guidanse.scale" = [1.0, 3.0]\n' "$cfg" > "$work/sweep.toml"
if "$daug" run "$work/sweep.toml" "${sets[@]}" > "$work/7.txt" 2>&1; then fail "a sweep over guidanse.scale exited 0" "$work/7.txt"; fi
grep -q "did you mean \[guidance\]" "$work/7.txt" || fail "no did-you-mean in the sweep" "$work/7.txt"
echo "cache keys OK"
