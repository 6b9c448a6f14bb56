#!/usr/bin/env python3
"""Checks the training curves of a daug HTML report (the `report` stage's report.html) in headless Chromium.

    tests/report/curves_check.py REPORT.html OUT_DIR STAGE [STAGE ...]

1. Every inline <svg class="daug-chart"> parses as XML (xml.etree), and each STAGE has exactly one
   <figure class="curves" data-stage="STAGE"> holding two charts (loss, learning rate) with a "loss" and an "lr" series.
2. Chromium lays the page out (--dump-dom of a copy with a probe script appended): each chart has a non-zero box,
   and the point halfway along its topmost series is hit-tested to that series' <path> (shown, not covered).
3. Chromium screenshots the page down to the last figure; inside the first stage's loss chart, pixels of the loss
   colour (#1f77b4), and inside its lr chart, of the lr colour (#444), are present. The figures are cropped to
   OUT_DIR/training_curves.png.

Standard library only (the CI image has python3 but no numpy/PIL). Exit 0 = OK, 1 = a check failed or bad usage,
2 = no chromium.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

SVG_NS = "{http://www.w3.org/2000/svg}"
WIDTH = 1280


def fail(msg):
    print("curves_check: " + msg, file=sys.stderr)
    sys.exit(1)


def browser():
    for b in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(b):
            return b
    print("curves_check: no chromium found; install it with: apt-get install -y chromium", file=sys.stderr)
    sys.exit(2)


def chromium(args, page, height):
    profile = tempfile.mkdtemp()
    try:
        cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", "--force-device-scale-factor=1", "--user-data-dir=" + profile,
               "--window-size=%d,%d" % (WIDTH, height)] + args + ["file://" + os.path.abspath(page)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        return r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def read_png(path):
    """8-bit RGB/RGBA, non-interlaced PNG -> (width, height, rows of (r, g, b) tuples)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path + " is not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                fail("%s: unsupported PNG (depth %d, colour type %d, interlace %d)" % (path, depth, ctype, interlace))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def write_png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rows)
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


PROBE = r"""<script>
(function () {
  const out = [];
  for (const fig of document.querySelectorAll('figure.curves')) {
    const r = fig.getBoundingClientRect();
    const f = {stage: fig.dataset.stage, figure: [r.left, r.top + scrollY, r.width, r.height], charts: []};
    for (const svg of fig.querySelectorAll('svg.daug-chart')) {
      const b = svg.getBoundingClientRect();
      const c = {box: [b.left, b.top + scrollY, b.width, b.height], hit: null};
      const paths = svg.querySelectorAll('path.series');  // the last one is drawn on top of the others
      const path = paths.length ? paths[paths.length - 1] : null;
      if (path) {
        const p = path.getPointAtLength(path.getTotalLength() / 2).matrixTransform(svg.getScreenCTM());
        window.scrollTo(0, p.y + scrollY - innerHeight / 2);
        const q = path.getPointAtLength(path.getTotalLength() / 2).matrixTransform(svg.getScreenCTM());
        const e = document.elementFromPoint(q.x, q.y);
        c.series = path.dataset.series;
        c.hit = e === path ? 'path' : (e ? e.tagName + '.' + e.getAttribute('class') : 'nothing');
        window.scrollTo(0, 0);
      }
      f.charts.push(c);
    }
    out.push(f);
  }
  const pre = document.createElement('pre');
  pre.id = 'curves-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def main():
    if len(sys.argv) < 4 or not os.path.isfile(sys.argv[1]):
        fail("usage: curves_check.py REPORT.html OUT_DIR STAGE [STAGE ...]")
    report, out_dir, stages = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    html = open(report, encoding="utf-8").read()

    # 1. Well-formed charts, one figure per stage with the loss and lr series.
    figures = re.findall(r'<figure class="curves" data-stage="([^"]*)">(.*?)</figure>', html, re.S)
    for stage in stages:
        mine = [body for s, body in figures if s == stage]
        if len(mine) != 1:
            fail("%s: expected one training-curves figure for stage [%s], found %d (figures: %s)"
                 % (report, stage, len(mine), [s for s, _ in figures]))
        svgs = re.findall(r"<svg .*?</svg>", mine[0], re.S)
        if len(svgs) != 2:
            fail("stage [%s]: expected 2 charts (loss, learning rate), found %d" % (stage, len(svgs)))
        series = []
        for svg in svgs:
            try:
                root = ET.fromstring(svg)
            except ET.ParseError as e:
                fail("stage [%s]: a chart is not well-formed XML: %s" % (stage, e))
            if root.tag != SVG_NS + "svg":
                fail("stage [%s]: chart root is %s, not an SVG element" % (stage, root.tag))
            series += [p.get("data-series") for p in root.iter(SVG_NS + "path")]
            series += [p.get("data-series") for p in root.iter(SVG_NS + "circle")]
        for want in ("loss", "loss EMA", "lr"):
            if want not in series:
                fail("stage [%s]: no '%s' series in its charts (found %s)" % (stage, want, sorted(set(series))))

    # 2. Layout and hit tests in Chromium.
    probe_page = os.path.join(out_dir, "probe.html")
    with open(probe_page, "w", encoding="utf-8") as f:
        f.write(html.replace("</body>", PROBE + "</body>"))
    dom, log = chromium(["--dump-dom"], probe_page, 1600)
    m = re.search(r'<pre id="curves-probe">(.*?)</pre>', dom, re.S)
    if not m:
        fail("chromium's --dump-dom has no probe result; its log:\n" + log[-2000:])
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                       .replace("&amp;", "&"))
    by_stage = {f["stage"]: f for f in probe}
    for stage in stages:
        f = by_stage.get(stage)
        if not f or len(f["charts"]) != 2:
            fail("stage [%s]: chromium laid out %s" % (stage, f))
        for c in f["charts"]:
            if c["box"][2] < 100 or c["box"][3] < 100:
                fail("stage [%s]: a chart is laid out %gx%g px (hidden?)" % (stage, c["box"][2], c["box"][3]))
            if c["hit"] != "path":
                fail("stage [%s]: the middle of series '%s' hit-tests to %s, not its path (covered or invisible)"
                     % (stage, c.get("series"), c["hit"]))

    # 3. Pixels of the first stage's loss and lr charts in a screenshot.
    first = by_stage[stages[0]]
    boxes = [by_stage[s]["figure"] for s in stages]
    fx = int(min(b[0] for b in boxes))
    fy = int(min(b[1] for b in boxes))
    fw = int(max(b[0] + b[2] for b in boxes)) + 1 - fx
    fh = int(max(b[1] + b[3] for b in boxes)) + 1 - fy
    shot = os.path.join(out_dir, "report_curves_screenshot.png")
    if os.path.exists(shot):
        os.remove(shot)
    height = min(fy + fh + 20, 16000)
    _, log = chromium(["--screenshot=" + shot], report, height)
    if not os.path.isfile(shot):
        fail("chromium wrote no screenshot; its log:\n" + log[-2000:])
    w, h, rows = read_png(shot)

    def count(box, rgb, tol):
        x0, y0, bw, bh = [int(round(v)) for v in box]
        n = 0
        for y in range(max(0, y0), min(h, y0 + bh)):
            for x in range(max(0, x0), min(w, x0 + bw)):
                px = rows[y][x]
                n += all(abs(px[i] - rgb[i]) <= tol for i in range(3))
        return n

    loss_px = count(first["charts"][0]["box"], (0x1F, 0x77, 0xB4), 40)
    lr_px = count(first["charts"][1]["box"], (0x44, 0x44, 0x44), 30)
    if loss_px < 50 or lr_px < 50:
        fail("stage [%s]: the screenshot shows %d loss-coloured pixels in the loss chart and %d lr-coloured in the "
             "lr chart (expected >= 50 each): the curves are not visible" % (stages[0], loss_px, lr_px))
    crop = [row[max(0, fx - 4):min(w, fx + fw + 4)] for row in rows[max(0, fy - 4):min(h, fy + fh + 4)]]
    write_png(os.path.join(out_dir, "training_curves.png"), crop)
    print("curves_check: OK: %d figure(s) for %s; first loss chart %d px of #1f77b4, lr chart %d px of #444; "
          "crop %s" % (len(stages), ", ".join(stages), loss_px, lr_px, os.path.join(out_dir, "training_curves.png")))


if __name__ == "__main__":
    main()
