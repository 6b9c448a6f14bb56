#!/usr/bin/env bash
# End to end: `daug index build` on the CLIP smoke config (runs the heatmap and CLIP stages it needs), then
# `daug query` by text, by an indexed id and by an image file (its heatmap computed through the heatmap stage),
# with the hits and class scores checked in numpy against the index files and an independent text embedding from
# `daug embed`; HTML rendered in headless Chromium; a rebuild is a cache hit; damaged indexes are refused.
# Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
py=/usr/bin/python3
rm -rf "$work"; mkdir -p "$work"
cfg="$src/configs/smoke/clip_nih.toml"
sets=(--set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"")
fail() { echo "index_query: $*"; exit 1; }
run() { local out=$1; shift; "$@" > "$out" 2>&1 || { cat "$out"; fail "command failed: $*"; }; }
# JSON on stdout; the log (stage runs of an image query) on stderr.
run_json() { local out=$1; shift; "$@" > "$out" 2> "$out.log" || { cat "$out" "$out.log"; fail "command failed: $*"; }; }

run "$work/build.txt" "$daug" index build "$cfg" "${sets[@]}" --out "$work/idx"
grep -q "index of 12 images" "$work/build.txt" || { cat "$work/build.txt"; fail "expected 12 indexed images"; }
for f in index.json embeddings.npy items.csv class_embeddings.npy config.toml; do
  [ -s "$work/idx/$f" ] || fail "missing $f"
done
run "$work/info.txt" "$daug" index info "$work/idx"
grep -q "12 images" "$work/info.txt" || { cat "$work/info.txt"; fail "index info"; }
# Rebuilding is a cache hit of every stage.
run "$work/build2.txt" "$daug" index build "$cfg" "${sets[@]}" --out "$work/idx2"
grep -q "stage \[index\].*cached at" "$work/build2.txt" || { cat "$work/build2.txt"; fail "rebuild not cached"; }
cmp "$work/idx/embeddings.npy" "$work/idx2/embeddings.npy" || fail "rebuild changed the embeddings"

# Two ranks (chunks of 5 rows dealt round-robin, rank 0 assembles) give the same rows to float rounding (other batches).
run "$work/build_dist.txt" timeout 300 "$daug" launch --nproc 2 -- index build "$cfg" "${sets[@]}" \
  --set index.chunk_rows=5 --out "$work/idx_dist"
"$py" -c "
import numpy as np, sys
a, b = (np.load(f'{d}/embeddings.npy') for d in sys.argv[1:3])
assert a.shape == b.shape and np.abs(a - b).max() < 1e-6, (a.shape, b.shape, np.abs(a - b).max())
print('2-rank index: same rows, max |diff|', np.abs(a - b).max())" "$work/idx" "$work/idx_dist"

text="large right pleural effusion"
run_json "$work/q_text.json" "$daug" query --index "$work/idx" --text "$text" --k 5 --json
ckpt=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['model']['checkpoint'])" "$work/idx/index.json")
run "$work/embed.txt" "$daug" embed "$cfg" "${sets[@]}" --set "backbone.weights=\"$ckpt\"" --texts "$text" \
  --out "$work/emb"
"$py" "$src/tests/retrieval/check_query.py" text "$work/idx" "$work/emb/text_embeds_norm.npy" "$work/q_text.json" 5

id=$("$py" -c "import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[3]['id'])" "$work/idx/items.csv")
image=$("$py" -c "import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[3]['image'])" "$work/idx/items.csv")
run_json "$work/q_id.json" "$daug" query --index "$work/idx" --id "$id" --k 4 --json
"$py" "$src/tests/retrieval/check_query.py" id "$work/idx" "$id" "$work/q_id.json" 4
run_json "$work/q_image.json" "$daug" query --index "$work/idx" --image "$image" --k 3 --json --html "$work/q.html"
"$py" "$src/tests/retrieval/check_query.py" image "$work/idx" "$id" "$work/q_image.json" 3
grep -q '"heatmap"' "$work/q_image.json" || fail "the image query computed no heatmap"
[ "$(grep -c 'class="thumb"' "$work/q.html")" -eq 3 ] || fail "expected 3 thumbnails in the HTML"
grep -q 'id="query-heatmap"' "$work/q.html" || fail "no query heatmap in the HTML"
"$src/tests/report/render_check.sh" "$work/q.html" "$work/q.png" > "$work/render.txt" 2>&1 \
  || { cat "$work/render.txt"; fail "the query page does not render"; }
# DICOM: the same image written by DCMTK's img2dcm as MONOCHROME2 8-bit gives the PNG query's hits and scores; with
# (0028,0004) set to MONOCHROME1 by dcmodify it reads as the inverted image (255 - p), so it must give the hits and
# scores of a PNG holding 255 - p.
"$py" -c "
from PIL import Image, ImageOps; import sys
im = Image.open(sys.argv[1]).convert('L'); im.save(sys.argv[2]); ImageOps.invert(im).save(sys.argv[3])" \
  "$image" "$work/q.bmp" "$work/q_inverted.png"
img2dcm -q -i BMP "$work/q.bmp" "$work/q2.dcm"
cp "$work/q2.dcm" "$work/q1.dcm"
dcmodify -q -nb -m "(0028,0004)=MONOCHROME1" "$work/q1.dcm"
run_json "$work/q_dicom2.json" "$daug" query --index "$work/idx" --image-dicom "$work/q2.dcm" --k 3 --json
run_json "$work/q_dicom1.json" "$daug" query --index "$work/idx" --image-dicom "$work/q1.dcm" --k 3 --json
run_json "$work/q_inverted.json" "$daug" query --index "$work/idx" --image "$work/q_inverted.png" --k 3 --json
"$py" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def load(n):
    j = json.load(open(f"{w}/{n}.json"))
    return [(h["row"], h["score"]) for h in j["hits"]], [(c["class"], c["probability"]) for c in j["class_scores"]]
for dcm, png in (("q_dicom2", "q_image"), ("q_dicom1", "q_inverted")):
    (a, ca), (b, cb) = load(dcm), load(png)
    assert [r for r, _ in a] == [r for r, _ in b], (dcm, a, png, b)
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 1e-6, (dcm, a, png, b)
    assert max(abs(x - y) for (_, x), (_, y) in zip(ca, cb)) < 1e-6, (dcm, png)
    print(f"{dcm}.dcm query == {png} query: rows {[r for r, _ in a]}")
inv, orig = load("q_inverted")[0], load("q_image")[0]
assert inv != orig, "the inverted image gave the original's hits: the inversion did nothing"
PY

# Plain-text output: ranked lines with scores.
run "$work/q_text.txt" "$daug" query --index "$work/idx" --text "$text" --k 3
grep -Eq '^ +1 +[-0-9.]+ ' "$work/q_text.txt" || { cat "$work/q_text.txt"; fail "no ranked text output"; }

# The FAISS plugin, selected through TOML, gives the same top 10 as exact search (flat, HNSW, IVF probing every list).
run_json "$work/q_exact10.json" "$daug" query --index "$work/idx" --text "$text" --k 10 --json
for t in 'type="flat"' 'type="hnsw"' 'type="ivf_flat" --set search.nlist=2 --set search.nprobe=2'; do
  # shellcheck disable=SC2086
  run_json "$work/q_faiss.json" "$daug" query --index "$work/idx" --text "$text" --k 10 --json \
    --set 'search.plugin="faiss"' --set search.$t
  "$py" "$src/tests/retrieval/check_query.py" same "$work/q_exact10.json" "$work/q_faiss.json"
done

# Refusals: a changed checkpoint, a missing index, a bad --k, two queries.
cp -r "$work/idx" "$work/bad"
sed -i 's/"checkpoint_sha256": "[0-9a-f]*"/"checkpoint_sha256": "0000"/' "$work/bad/index.json"
if "$daug" query --index "$work/bad" --text x > "$work/e1.txt" 2>&1; then fail "a changed checkpoint was accepted"; fi
grep -q "changed since the index was built" "$work/e1.txt" || { cat "$work/e1.txt"; fail "e1 message"; }
if "$daug" query --index "$work/nope" --text x > "$work/e2.txt" 2>&1; then fail "a missing index was accepted"; fi
grep -q "does not exist" "$work/e2.txt" || { cat "$work/e2.txt"; fail "e2 message"; }
if "$daug" query --index "$work/idx" --text x --id "$id" > "$work/e3.txt" 2>&1; then fail "two queries accepted"; fi
grep -q "exactly one of" "$work/e3.txt" || { cat "$work/e3.txt"; fail "e3 message"; }
# Build refusals are found when the config is checked, before any stage runs: --out a file, a split that does not exist.
touch "$work/a_file"
if "$daug" index build "$cfg" "${sets[@]}" --out "$work/a_file" > "$work/e4.txt" 2>&1; then fail "--out a file accepted"; fi
grep -q "exists and is not a directory" "$work/e4.txt" || { cat "$work/e4.txt"; fail "e4 message"; }
if "$daug" index build "$cfg" "${sets[@]}" --split tset --out "$work/idx5" > "$work/e5.txt" 2>&1; then
  fail "split 'tset' accepted"; fi
grep -q "index.split.*split must be train, val, test, all" "$work/e5.txt" || { cat "$work/e5.txt"; fail "e5 message"; }
grep -q "stage \[" "$work/e5.txt" && { cat "$work/e5.txt"; fail "a stage ran before the bad split was refused"; }
echo "index_query OK"
