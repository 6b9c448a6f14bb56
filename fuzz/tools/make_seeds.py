#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/) with the real tools that produce those
files for users: numpy (.npy), Pillow (PNG/JPEG), PyTorch (torch.save, TorchScript), gzip, plus hand-written
files that follow a published spec (safetensors) and a few deliberately broken edge cases.
Committed output; rerun only to change the seeds: /usr/bin/python3 fuzz/tools/make_seeds.py (Debian's
python3-numpy, python3-pil, python3-torch; the DICOM seeds need DCMTK's tools, Debian's `dcmtk`).
`make_seeds.py dicom image` rewrites only those targets' seeds."""
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ROOT)
CORPUS = os.path.join(ROOT, "corpus")
SEP = b"\n%%\n"  # part separator of the multi-file targets (fuzz_target.h: split_parts)


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors_bytes(tensors, metadata=None):
    """The safetensors layout (https://github.com/huggingface/safetensors#format): u64 LE header length, JSON
    header {name: {dtype, shape, data_offsets}}, then the data section."""
    names = {np.float32: "F32", np.float16: "F16", np.float64: "F64", np.int64: "I64", np.int32: "I32",
             np.uint8: "U8", np.bool_: "BOOL", np.int16: "I16", np.int8: "I8"}
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.tobytes()
        header[k] = {"dtype": names[a.dtype.type], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def seeds_safetensors():
    put("safetensors", "f32_metadata.safetensors",
        safetensors_bytes({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"format": "pt", "epoch": "3"}))
    put("safetensors", "dtypes.safetensors", safetensors_bytes({
        "a": np.array([1.5, -2], np.float16), "b": np.array([[7]], np.int64), "c": np.array([1, 0, 1], np.bool_),
        "d": np.array([255, 0], np.uint8), "e": np.array([-3], np.int32), "f": np.array(2.0, np.float64)}))
    put("safetensors", "zero_size.safetensors", safetensors_bytes({"empty": np.zeros((0, 4), np.float32)}))
    put("safetensors", "empty_header.safetensors", struct.pack("<Q", 8) + b"{}      ")
    # BF16 is not a numpy dtype: written by hand (1.0 and -2.0).
    h = b'{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    h += b" " * (-len(h) % 8)
    put("safetensors", "bf16.safetensors", struct.pack("<Q", len(h)) + h + bytes([0x80, 0x3f, 0x00, 0xc0]))
    # Edge cases: truncated data section, overlapping tensors.
    good = safetensors_bytes({"w": np.ones((4,), np.float32)})
    put("safetensors", "truncated.safetensors", good[:-3])
    h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
    put("safetensors", "overlap.safetensors", struct.pack("<Q", len(h)) + h + bytes(12))


def npy_bytes(a, version=None):
    f = io.BytesIO()
    if version is None:
        np.save(f, a)
    else:
        np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def seeds_npy():
    put("npy", "f32_2x3.npy", npy_bytes(np.arange(6, dtype=np.float32).reshape(2, 3)))
    put("npy", "f64_scalar.npy", npy_bytes(np.float64(3.25)))
    put("npy", "u8.npy", npy_bytes(np.array([0, 128, 255], np.uint8)))
    put("npy", "bool.npy", npy_bytes(np.array([[True, False]])))
    put("npy", "i64_empty.npy", npy_bytes(np.zeros((0, 5), np.int64)))
    put("npy", "i32_3d.npy", npy_bytes(np.arange(8, dtype=np.int32).reshape(2, 2, 2)))
    put("npy", "v2_heatmap.npy", npy_bytes(np.full((1, 4, 4), 0.5, np.float32), version=(2, 0)))
    put("npy", "fortran.npy", npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32))))
    put("npy", "big_endian.npy", npy_bytes(np.ones((2,), ">f4")))
    put("npy", "truncated.npy", npy_bytes(np.ones((4, 4), np.float32))[:-5])


def img_bytes(im, fmt, **kw):
    f = io.BytesIO()
    im.save(f, fmt, **kw)
    return f.getvalue()


def seeds_image():
    g = np.add.outer(np.arange(8), np.arange(8)).astype(np.uint8) * 16
    gray = Image.fromarray(g, "L")
    rgb = Image.fromarray(np.stack([g, 255 - g, g // 2], -1), "RGB")
    put("image", "gray8.png", img_bytes(gray, "PNG"))
    put("image", "gray16.png", img_bytes(Image.fromarray(g.astype(np.uint16) * 257), "PNG"))
    put("image", "rgb.png", img_bytes(rgb, "PNG"))
    put("image", "rgba.png", img_bytes(rgb.convert("RGBA"), "PNG"))
    put("image", "gray_alpha.png", img_bytes(gray.convert("LA"), "PNG"))
    put("image", "palette.png", img_bytes(rgb.convert("P"), "PNG"))
    put("image", "bilevel.png", img_bytes(gray.convert("1"), "PNG"))
    put("image", "optimized16.png", img_bytes(gray.resize((16, 16)), "PNG", optimize=True))
    put("image", "gray.jpg", img_bytes(gray, "JPEG", quality=90))
    put("image", "rgb.jpg", img_bytes(rgb.resize((16, 16)), "JPEG", quality=75))
    put("image", "progressive.jpg", img_bytes(rgb.resize((24, 16)), "JPEG", progressive=True))
    put("image", "truncated.jpg", img_bytes(gray, "JPEG")[:-40])
    put("image", "cmyk.jpg", img_bytes(rgb.convert("CMYK"), "JPEG"))


def seeds_dicom():
    """DICOM files written by DCMTK's own tools: dump2dcm from a text dump (+ raw pixels), then its encoders."""
    g = np.add.outer(np.arange(8), np.arange(8)).astype(np.uint8) * 16
    with tempfile.TemporaryDirectory() as tmp:
        def dump(name, lines, pixels):
            raw = os.path.join(tmp, name + ".raw")
            pixels.tofile(raw)
            txt = os.path.join(tmp, name + ".txt")
            with open(txt, "w") as f:
                f.write("\n".join(lines + ["(7fe0,0010) %s =%s" % ("OB" if pixels.itemsize == 1 else "OW", raw)]))
            out = os.path.join(tmp, name + ".dcm")
            subprocess.run(["dump2dcm", "-q", "+te", "-g", txt, out], check=True)
            return out

        def image(bits, photometric, extra=(), frames=1):
            return ["(0008,0016) UI =SecondaryCaptureImageStorage", "(0008,0018) UI [1.2.3.4]",
                    "(0028,0002) US 1", "(0028,0004) CS [%s]" % photometric] + \
                   (["(0028,0008) IS [%d]" % frames] if frames > 1 else []) + \
                   ["(0028,0010) US 8", "(0028,0011) US 8", "(0028,0100) US %d" % (8 if bits <= 8 else 16),
                    "(0028,0101) US %d" % bits, "(0028,0102) US %d" % (bits - 1), "(0028,0103) US 0"] + list(extra)

        m2 = dump("m2", image(8, "MONOCHROME2"), g)
        put("dicom", "mono2_8bit.dcm", open(m2, "rb").read())
        put("dicom", "mono1_8bit.dcm", open(dump("m1", image(8, "MONOCHROME1"), g), "rb").read())
        w12 = (g.astype(np.uint16) * 16).astype("<u2")
        win = dump("w12", image(12, "MONOCHROME2", ["(0028,1050) DS [1024]", "(0028,1051) DS [2048]",
                                                     "(0028,1052) DS [-100]", "(0028,1053) DS [2]"]), w12)
        put("dicom", "window_12bit.dcm", open(win, "rb").read())
        put("dicom", "multiframe.dcm", open(dump("mf", image(8, "MONOCHROME2", frames=2),
                                                  np.concatenate([g, 255 - g])), "rb").read())
        voi = image(12, "MONOCHROME1", ["(0028,3010) SQ (Sequence with explicit length #=1)",
                                        "  (fffe,e000) na (Item with explicit length #=3)",
                                        "    (0028,3002) US 16\\0\\8",
                                        "    (0028,3006) US " + "\\".join(str(i * 16) for i in range(16)),
                                        "  (fffe,e00d) na (ItemDelimitationItem for re-encoding)",
                                        "(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)"])
        put("dicom", "voi_lut.dcm", open(dump("voi", voi, (g // 16).astype("<u2")), "rb").read())
        for tool, args, name in [("dcmcjpeg", ["+eb"], "jpeg_baseline.dcm"), ("dcmcjpeg", ["+e1"], "jpeg_lossless.dcm"),
                                 ("dcmcjpls", ["+el"], "jpeg_ls.dcm"), ("dcmcrle", [], "rle.dcm")]:
            out = os.path.join(tmp, name)
            subprocess.run([tool, "-q"] + args + [m2, out], check=True)
            put("dicom", name, open(out, "rb").read())
        put("dicom", "truncated.dcm", open(m2, "rb").read()[:-30])
        sr = dump("sr", ["(0008,0016) UI =BasicTextSRStorage", "(0008,0018) UI [1.2.3.5]"], np.zeros(0, np.uint8))
        sr_bytes = open(sr, "rb").read()
        put("dicom", "no_pixels_sr.dcm", sr_bytes[:sr_bytes.rfind(b"\xe0\x7f\x10\x00")])  # drop the empty PixelData


def seeds_csv():
    with open(os.path.join(REPO, "examples/data/nih-cxr14-sample/labels.csv"), "rb") as f:
        nih = b"".join(f.readlines()[:4])
    put("csv", "nih_labels.csv", nih)
    with open(os.path.join(REPO, "tests/conformance/data/chexpert/valid.csv"), "rb") as f:
        put("csv", "chexpert_valid.csv", f.read())
    with open(os.path.join(REPO, "tests/conformance/data/mimic/mimic-cxr-2.0.0-split.csv"), "rb") as f:
        put("csv", "mimic_split.csv", f.read())
    put("csv", "quoted.csv", b'id,report\r\n1,"FINDINGS: ""clear"", no effusion,\r\nIMPRESSION: normal"\r\n2,plain\r\n')
    put("csv", "bom_blank_lines.csv", b"\xef\xbb\xbfa,b\n\n1,2\n\n3,4")
    put("csv", "gzip.csv.gz", gzip.compress(b"dicom_id,study_id,subject_id,split\nx,1,2,train\n", mtime=0))
    put("csv", "unterminated.csv", b'a,b\n1,"open\n')


def seeds_config():
    def files(*parts):
        return SEP.join(p.encode() for p in parts)
    with open(os.path.join(REPO, "configs/generator/ddpm_tiny32.toml")) as f:
        gen = f.read()
    put("config", "imports.toml", files(
        'imports = ["1.toml", "2.toml"]\n#set guidance.scale=5\n#set run.stages=["heatmaps"]\n'
        '[run]\nname = "fuzz"\nout = "${config_dir}/runs"\n',
        'schema_version = 1\n[guidance]\nplugin = "softmax"\nscale = 1.5\n[data]\nroot = "${config_dir}/d"\n',
        '[guidance]\nplugin = "sigmoid"\n[run]\nseed = 3\nstages = ["a", "b"]\n'))
    put("config", "generator.toml", files(gen))
    put("config", "nested.toml", files('imports = ["1.toml"]\n', 'imports = ["2.toml"]\n[a]\nx = 1\n',
                                      'imports = ["3.toml"]\n[a.b]\ny = [1, 2]\n', '[a]\nz = { p = "q" }\n'))
    put("config", "cycle.toml", files('imports = ["1.toml"]\n', 'imports = ["main.toml"]\n'))
    put("config", "env.toml", files('path = "${env:HOME}/x"\n#set a.b.c=bare\n'))
    put("config", "bad_set.toml", files('[a]\nb = 1\n#set a.b.c=2\n'))


def seeds_tokenizer():
    with open(os.path.join(REPO, "plugins/backbone_clip_vit/testdata/tokenizer_corpus.txt"), "rb") as f:
        lines = [l for l in f.read().split(b"\n") if l.strip()]
    for i, l in enumerate(lines[:6]):
        put("tokenizer", f"corpus_{i}.txt", l)
    put("tokenizer", "html.txt", "Heart size &amp;amp; mediastinum &lt;normal&gt; &#39;stable&#39; &quot;x&quot;")
    put("tokenizer", "unicode.txt", "ﬁndings: “no” pneumothorax\u00a0\u200b— café ÉCHO 肺 🙂 x\u0301")
    put("tokenizer", "special.txt", "<|startoftext|>left lung<|endoftext|> it's we'll they're 1234567")
    put("tokenizer", "invalid_utf8.txt", b"lung \xff\xfe \xc3( opacity \xe2\x82")
    put("tokenizer", "long_word.txt", "pneumono" * 40)


def seeds_torch():
    sd = OrderedDict([("logit_scale", torch.tensor(4.6052)), ("visual.proj", torch.arange(6.0).reshape(2, 3)),
                      ("token_embedding.weight", torch.ones(3, 2, dtype=torch.float16))])
    plain = io.BytesIO()
    torch.save(dict(sd), plain)  # a plain dict of tensors: what the reader accepts today
    with_meta = io.BytesIO()
    sd._metadata = OrderedDict([("", {"version": 1})])  # as module.state_dict() returns (issue 9, item 10)
    torch.save(sd, with_meta)
    nested = io.BytesIO()
    torch.save({"state_dict": {"module.w": torch.zeros(2)}, "epoch": 3}, nested)
    hf = io.BytesIO()
    torch.save({"vision_model.embeddings.class_embedding": torch.ones(4),
                "text_model.final_layer_norm.bias": torch.zeros(4)}, hf)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Parameter(torch.eye(2))
            self.register_buffer("input_resolution", torch.tensor(224))

        def forward(self, x):
            return x @ self.proj

    script = io.BytesIO()
    torch.jit.save(torch.jit.script(Tiny()), script)
    for name, buf in [("state_dict.pt", plain), ("state_dict_metadata.pt", with_meta), ("nested.pt", nested),
                      ("hf_names.bin", hf), ("torchscript.pt", script)]:
        put("clip_weights", name, buf.getvalue())
        put("torch_save", name, buf.getvalue())
        # torch_pickle: the same archive as its records (data.pkl, then data/0, data/1, ...).
        if name != "torchscript.pt":
            z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
            recs = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
            n_data = sum(1 for k in recs if k.startswith("data/"))
            put("torch_pickle", name.rsplit(".", 1)[0] + ".records",
                SEP.join([recs["data.pkl"]] + [recs[f"data/{i}"] for i in range(n_data)]))
    put("clip_weights", "hf.safetensors", safetensors_bytes({
        "vision_model.embeddings.class_embedding": np.ones(4, np.float32),
        "visual_projection.weight": np.ones((2, 4), np.float32)}))
    put("clip_weights", "daug.safetensors", safetensors_bytes({"visual.proj": np.ones((4, 2), np.float32)}))
    put("clip_weights", "truncated_zip.pt", plain.getvalue()[:200])
    put("torch_save", "truncated_zip.pt", plain.getvalue()[:200])


if __name__ == "__main__":
    groups = {"safetensors": [seeds_safetensors], "npy": [seeds_npy], "image": [seeds_image], "csv": [seeds_csv],
              "config": [seeds_config], "tokenizer": [seeds_tokenizer], "dicom": [seeds_dicom],
              "torch": [seeds_torch]}
    if len(sys.argv) > 1:  # only these targets' seeds
        for t in sys.argv[1:]:
            shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
            for fn in groups[t]:
                fn()
    else:
        if os.path.isdir(CORPUS):
            shutil.rmtree(CORPUS)
        for fns in groups.values():
            for fn in fns:
                fn()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print(f"{t}: {len(files)} files, {size} bytes")
