#!/usr/bin/env bash
# Renders a daug HTML report (the `report` stage's report.html) in headless Chromium and writes a screenshot, for a
# visual check that tables, overlays and retrieval thumbnails display (the page must be self-contained: no network).
#
#   tests/report/render_check.sh runs/<run>/.../report.html [out.png] [width] [height]
#
# Needs chromium (Debian: apt-get install chromium). Exit status: 0 = screenshot written and non-trivial,
# 1 = usage/missing input, 2 = chromium missing, 3 = rendering failed.
set -euo pipefail
html=${1:-}
out=${2:-report_screenshot.png}
width=${3:-1280}
height=${4:-2000}
if [[ -z "$html" || ! -f "$html" ]]; then
  echo "usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]  (got '${html}', which is not a file)" >&2
  exit 1
fi
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" > /dev/null 2>&1; then browser=$b; break; fi
done
if [[ -z "$browser" ]]; then
  echo "render_check: no chromium found; install it with: apt-get install -y chromium" >&2
  exit 2
fi
# The report must not reference anything outside itself.
if grep -Eo '(src|href)="[^"#]{0,16}' "$html" | grep -Ev '"data:' > /dev/null; then
  echo "render_check: $html references external files:" >&2
  grep -Eo '(src|href)="[^"#]{0,60}' "$html" | grep -Ev '"data:' | head -5 >&2
  exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
rm -f "$out"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
  --hide-scrollbars --screenshot="$out" --window-size="${width},${height}" "file://$abs" > "$profile/log.txt" 2>&1 || true
if [[ ! -s "$out" ]]; then
  echo "render_check: chromium wrote no screenshot; its log:" >&2
  tail -20 "$profile/log.txt" >&2
  exit 3
fi
size=$(stat -c %s "$out")
if (( size < 10000 )); then
  echo "render_check: screenshot $out is only $size bytes (blank page?)" >&2
  exit 3
fi
echo "render_check: wrote $out ($size bytes, ${width}x${height}) from $abs"
