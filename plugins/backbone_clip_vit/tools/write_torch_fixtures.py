#!/usr/bin/env python3
"""Writes the torch.save fixtures of the C++ torch.save reader tests with real Python PyTorch (Debian's
python3-torch 1.13.1 was used for the committed files), and the reference outputs the tests compare with.

Usage (from the repository root; OpenAI's model code comes from a clone of github.com/openai/CLIP):
    /usr/bin/python3 plugins/backbone_clip_vit/tools/write_torch_fixtures.py --openai-clip /path/to/CLIP

Writes
  plugins/backbone_clip_vit/testdata/
    tiny_clip_state_dict.pt     torch.save(model.state_dict()): an OrderedDict with a `_metadata` attribute, fp32
    tiny_clip_ddp_cuda.pt       a training checkpoint {"epoch", "name", "state_dict", "optimizer"} whose
                                state_dict comes from nn.DataParallel (keys "module.*", as DDP writes them) and
                                whose storages are tagged "cuda:0" (see below)
    tiny_clip_embeddings.txt    encode_image / encode_text of the Python model on the inputs described in the file
  tests/sdk/fixtures/torch_save/
    misc.pt, misc_expected.json   dtypes, views, shared storages, nested containers, a non-dict "model" wrapper
    legacy.pt                   the pre-1.6 (non-zip) torch.save format, which the reader must refuse clearly

The model is OpenAI's clip/model.py `CLIP` with the dimensions of daug's `tiny` preset (width 64, 2 layers, 2 heads,
patch 8, 32 px, 16 tokens, embed 32). To keep the files small (a full 49408 x 64 token table alone is 12.6 MB),
every parameter with two or more dimensions is an overlapping strided view W[i, j, ...] = s[i + j + ...] of a small
random storage (stride 1 in every dimension), as torch.save writes any view: one storage plus size, stride and offset.
The reader must therefore honour strides; the model's numbers are those of these (full-rank) weights.

"CUDA" without a GPU: torch.save asks torch.serialization.location_tag(storage) for each storage's device string and
writes it into data.pkl; here it is replaced by a function returning "cuda:0", which writes exactly what a save of
CUDA tensors writes (the bytes are always copied to the host first). The script checks that
torch.load(..., map_location="cpu") reads it back and that a plain torch.load refuses it on this CUDA-less machine.
"""
import argparse
import collections
import json
import os
import sys

import torch
import torch.serialization
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CLIP_OUT = os.path.join(ROOT, "plugins", "backbone_clip_vit", "testdata")
SDK_OUT = os.path.join(ROOT, "tests", "sdk", "fixtures", "torch_save")


def tiny_clip(clip_module):
    torch.manual_seed(20240917)
    model = clip_module.CLIP(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64,
                             vision_patch_size=8, context_length=16, vocab_size=49408, transformer_width=64,
                             transformer_heads=2, transformer_layers=2)
    # OpenAI derives vision heads as width // 64 (= 1); daug's tiny preset has 2.
    model.visual = clip_module.VisionTransformer(input_resolution=32, patch_size=8, width=64, layers=2, heads=2,
                                                 output_dim=32)
    with torch.no_grad():
        for name, p in list(model.named_parameters()):
            module = model
            *path, leaf = name.split(".")
            for part in path:
                module = getattr(module, part)
            if p.dim() >= 2:
                n = sum(p.shape) - p.dim() + 1
                scale = 1.0 / (p.shape[-1] ** 0.5)
                storage = torch.randn(n) * scale
                view = storage.as_strided(p.shape, (1,) * p.dim())
                module._parameters[leaf] = nn.Parameter(view)
            elif leaf == "logit_scale":
                p.fill_(3.25)
            elif "weight" in leaf:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    model.eval()
    return model


def inputs():
    # Exactly representable in float32, so C++ builds the same tensor.
    n = 2 * 3 * 32 * 32
    pixels = ((torch.arange(n, dtype=torch.int64) * 37) % 101 - 50).to(torch.float32).div(32.0).reshape(2, 3, 32, 32)
    tokens = torch.zeros(2, 16, dtype=torch.int64)
    tokens[0, :7] = torch.tensor([49406, 320, 1125, 539, 320, 2368, 49407])
    tokens[1, :9] = torch.tensor([49406, 320, 10563, 268, 87, 3077, 2867, 539, 49407])
    return pixels, tokens


def save_with_location(obj, path, location):
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: location
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = original


def write_clip(clip_module):
    model = tiny_clip(clip_module)
    state = model.state_dict()
    assert isinstance(state, collections.OrderedDict) and hasattr(state, "_metadata")
    plain = os.path.join(CLIP_OUT, "tiny_clip_state_dict.pt")
    torch.save(state, plain)

    ddp_state = nn.DataParallel(model).state_dict()
    assert all(k.startswith("module.") for k in ddp_state) and hasattr(ddp_state, "_metadata")
    ckpt = {"epoch": 3, "name": "tiny", "state_dict": ddp_state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.98), "eps": 1e-6,
                                                         "weight_decay": 0.2, "amsgrad": False, "params": [0, 1]}]}}
    cuda = os.path.join(CLIP_OUT, "tiny_clip_ddp_cuda.pt")
    save_with_location(ckpt, cuda, "cuda:0")
    loaded = torch.load(cuda, map_location="cpu")
    assert all(torch.equal(loaded["state_dict"]["module." + k], v) for k, v in state.items())
    if not torch.cuda.is_available():
        try:
            torch.load(cuda)
            raise AssertionError("torch.load without map_location should refuse cuda:0 storages without CUDA")
        except RuntimeError as e:
            assert "CUDA" in str(e), e

    pixels, tokens = inputs()
    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(tokens)
    with open(os.path.join(CLIP_OUT, "tiny_clip_embeddings.txt"), "w") as f:
        f.write("# Written by tools/write_torch_fixtures.py with PyTorch %s and openai/CLIP clip/model.py from\n"
                "# tiny_clip_state_dict.pt's model. Inputs: pixels[i] = ((i * 37) %% 101 - 50) / 32 for i in\n"
                "# [0, 2*3*32*32), shape [2, 3, 32, 32]; tokens (zero-padded to 16): %s and %s.\n"
                "# One row per line: 'image' or 'text', the row index, then the 32 values.\n"
                % (torch.__version__, tokens[0].tolist()[:7], tokens[1].tolist()[:9]))
        for name, t in (("image", img), ("text", txt)):
            for i, row in enumerate(t.tolist()):
                f.write("%s %d %s\n" % (name, i, " ".join(repr(v) for v in row)))


def write_misc():
    torch.manual_seed(7)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8.0
    shared = torch.arange(10, dtype=torch.float64) - 2.5
    weights = collections.OrderedDict()
    weights["module.fp32"] = base
    weights["module.transposed"] = base.t()                    # non-contiguous, same storage as fp32
    weights["module.slice"] = shared[3:7]                      # storage offset 3
    weights["module.slice2"] = shared[::3]                     # stride 3
    weights["module.fp16"] = torch.tensor([0.5, -1.25, 65504.0], dtype=torch.float16)
    weights["module.bf16"] = torch.tensor([1.0, -2.0, 0.15625], dtype=torch.bfloat16)
    weights["module.i64"] = torch.tensor([[-(2 ** 40), 7], [0, 2 ** 62]], dtype=torch.int64)
    weights["module.i32"] = torch.tensor([-3, 2 ** 30], dtype=torch.int32)
    weights["module.u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    weights["module.bool"] = torch.tensor([True, False, True])
    weights["module.scalar"] = torch.tensor(4.75)
    weights["module.empty"] = torch.zeros(0, 3)
    weights["module.param"] = nn.Parameter(torch.tensor([1.5, 2.5]))
    weights._metadata = collections.OrderedDict([("", {"version": 1})])
    obj = {"model": weights, "epoch": 12, "args": argparse.Namespace(lr=0.1, name="misc"), "history": [1.5, None,
           True, (2, "x")], "step": 2 ** 40}
    path = os.path.join(SDK_OUT, "misc.pt")
    torch.save(obj, path)
    expected = collections.OrderedDict()
    for k, v in weights.items():
        v = v.detach()
        expected[k[len("module."):]] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                                        "values": v.to(torch.float64).flatten().tolist()}
    with open(os.path.join(SDK_OUT, "misc_expected.json"), "w") as f:
        json.dump({"torch_version": torch.__version__, "nested_key": "model", "prefix": "module.",
                   "tensors": expected}, f, indent=1)
        f.write("\n")
    torch.save({"w": torch.ones(2)}, os.path.join(SDK_OUT, "legacy.pt"), _use_new_zipfile_serialization=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--openai-clip", required=True, help="a clone of github.com/openai/CLIP (for clip/model.py)")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.openai_clip, "clip"))
    import model as clip_module  # openai/CLIP clip/model.py (imports only torch and numpy)
    os.makedirs(CLIP_OUT, exist_ok=True)
    os.makedirs(SDK_OUT, exist_ok=True)
    write_clip(clip_module)
    write_misc()


if __name__ == "__main__":
    main()
