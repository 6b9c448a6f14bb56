#!/usr/bin/python3
"""Eager-PyTorch baseline for daug's benchmarks (a baseline only: daug never imports this file).

Builds the same networks with the same shapes as the C++ benchmarks and times the same work with the same intra-op
thread count, so that a benchmark can print daug's speed as a ratio to plain eager PyTorch measured in the same run:

  guided   one classifier-guided DDIM step: ADM UNet forward (no grad) + noise-aware classifier forward/backward
           through log-softmax w.r.t. x_t (x100) + condition_score + the DDIM update (guided-diffusion's
           gaussian_diffusion.py/ddim_sample, Wolleb's cond_fn). --preset tiny | wolleb256 (the released 256^2
           layouts: UNet 113.7M params, classifier 5.45M, 7 classes).
  finetune one CLIP fine-tune step (ViT-B/32 or tiny): image tower + report tower + 14 class prompts -> hybrid loss
           (0.7 clip + 0.3 class BCE, s = exp(4.602)) -> backward -> AdamW (no decay on biases).
  search   exact inner-product top-k: torch.mm(queries, database.T) + topk (the `exact` VectorSearch's work) on
           --rows x --dim L2-normalised random rows and --batch queries, --k hits (search_bench.cpp).
  heatmaps DAug heatmaps of the main CPU config's models (tiny 32^2 UNet + tiny classifier, ddim20, L = 500:
           10 DDIM inversion + 10 guided DDIM steps, matched index pattern) + the absdiff/min-max composer.

Prints one line `EAGER <name> seconds=<min seconds per iteration> iters=<n> threads=<t>` (parsed by
tests/bench/eager.h). Run with Debian's python3-torch 1.13: /usr/bin/python3 tests/bench/eager_baseline.py guided
--preset wolleb256 --batch 1 --threads 2. The architecture code follows openai/guided-diffusion unet.py and
openai/CLIP model.py; only what the timed work needs is here.
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- guided-diffusion UNet / EncoderUNet (unet.py)
class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def norm(ch):
    return GroupNorm32(32, ch)


class TimestepBlock(nn.Module):
    pass


class Seq(nn.Sequential, TimestepBlock):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    def __init__(self, ch, use_conv):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, ch, use_conv):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x):
        return self.op(x)


class ResBlock(TimestepBlock):
    def __init__(self, ch, emb_ch, out_ch, scale_shift, up=False, down=False):
        super().__init__()
        self.in_layers = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(ch, False), Upsample(ch, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(ch, False), Downsample(ch, False)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(norm(out_ch), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.scale_shift = scale_shift
        self.skip = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x, emb):
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, 1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip(x) + h


def qkv_attention(qkv, heads, legacy):
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    scale = 1 / math.sqrt(math.sqrt(ch))
    if legacy:
        q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    else:
        q, k, v = (p.reshape(bs * heads, ch, length) for p in qkv.chunk(3, dim=1))
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    w = torch.softmax(w.float(), dim=-1).type(w.dtype)
    return torch.einsum("bts,bcs->bct", w, v).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, ch, heads):
        super().__init__()
        self.heads = heads
        self.norm = norm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, *sp = x.shape
        x = x.reshape(b, c, -1)
        h = qkv_attention(self.qkv(self.norm(x)), self.heads, legacy=True)
        return (x + self.proj_out(h)).reshape(b, c, *sp)


class AttentionPool2d(nn.Module):
    def __init__(self, spatial, ch, head_ch, out_ch):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(ch, spatial ** 2 + 1) / ch ** 0.5)
        self.qkv_proj = nn.Conv1d(ch, 3 * ch, 1)
        self.c_proj = nn.Conv1d(ch, out_ch, 1)
        self.heads = ch // head_ch

    def forward(self, x):
        b, c, *_ = x.shape
        x = x.reshape(b, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)
        x = x + self.positional_embedding[None].to(x.dtype)
        x = qkv_attention(self.qkv_proj(x), self.heads, legacy=False)
        return self.c_proj(x)[:, :, 0]


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def presets(name):
    """(unet kwargs, encoder kwargs) as libs/adm/src/unet.cpp unet_preset / encoder_preset."""
    if name == "tiny":
        return (dict(size=32, mc=32, mult=(1, 2), nrb=1, attn=(16,), heads=1, head_ch=-1),
                dict(size=32, mc=32, mult=(1, 2), nrb=1, attn=(16,), head_ch=32))
    size = 512 if name == "daug512" else 256
    return (dict(size=size, mc=128, mult=(1, 1, 2, 2, 4, 4), nrb=2, attn=(16,), heads=1, head_ch=-1),
            dict(size=size, mc=32, mult=(1, 1, 2, 2, 4, 4), nrb=4, attn=(32, 16, 8), head_ch=64))


class Trunk(nn.Module):
    def build_input(self, size, mc, mult, nrb, attn, head_ch, heads, scale_shift, resblock_updown, in_ch=1):
        ted = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        attn_ds = [size // r for r in attn]
        ch = mc * mult[0]
        self.input_blocks = nn.ModuleList([Seq(nn.Conv2d(in_ch, ch, 3, padding=1))])
        chans, ds = [ch], 1
        nh = lambda c: c // head_ch if head_ch > 0 else heads
        for level, m in enumerate(mult):
            for _ in range(nrb):
                layers = [ResBlock(ch, ted, int(m * mc), scale_shift)]
                ch = int(m * mc)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, nh(ch)))
                self.input_blocks.append(Seq(*layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(Seq(ResBlock(ch, ted, ch, scale_shift, down=True) if resblock_updown
                                             else Downsample(ch, True)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Seq(ResBlock(ch, ted, ch, scale_shift), AttentionBlock(ch, nh(ch)),
                                ResBlock(ch, ted, ch, scale_shift))
        return ch, chans, ds, attn_ds, nh, ted


class UNet(Trunk):
    def __init__(self, size, mc, mult, nrb, attn, heads, head_ch, num_classes=2, out_ch=2):
        super().__init__()
        self.mc = mc
        ch, chans, ds, attn_ds, nh, ted = self.build_input(size, mc, mult, nrb, attn, head_ch, heads, False, False)
        self.label_emb = nn.Embedding(num_classes, ted)
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nrb + 1):
                ich = chans.pop()
                layers = [ResBlock(ch + ich, ted, int(mc * m), False)]
                ch = int(mc * m)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, nh(ch)))
                if level and i == nrb:
                    layers.append(Upsample(ch, True))
                    ds //= 2
                self.output_blocks.append(Seq(*layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(mc * mult[0], out_ch, 3, padding=1))

    def forward(self, x, t, y):
        emb = self.time_embed(timestep_embedding(t, self.mc)) + self.label_emb(y)
        hs, h = [], x
        for b in self.input_blocks:
            h = b(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for b in self.output_blocks:
            h = b(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


class EncoderUNet(Trunk):
    def __init__(self, size, mc, mult, nrb, attn, head_ch, out_ch=7):
        super().__init__()
        self.mc = mc
        ch, _, ds, _, _, _ = self.build_input(size, mc, mult, nrb, attn, head_ch, 1, True, True)
        self.out = nn.Sequential(norm(ch), nn.SiLU(), AttentionPool2d(size // ds, ch, head_ch, out_ch))

    def forward(self, x, t):
        emb = self.time_embed(timestep_embedding(t, self.mc))
        h = x
        for b in self.input_blocks:
            h = b(h, emb)
        return self.out(self.middle_block(h, emb))


def nonzero_outputs(*models):
    """As diffusion_bench: the zero-initialised output layers get N(0, 0.01) so that the step does real work."""
    with torch.no_grad():
        for m in models:
            for k, v in m.named_parameters():
                if "out_layers.3" in k or "proj_out" in k or k.startswith("out.2"):
                    v.normal_(0, 0.01)


# ---------------------------------------------------------------- guided-diffusion DDIM (gaussian_diffusion.py)
class Diffusion:
    def __init__(self, T=1000, spec="ddim100"):
        betas = torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T, dtype=torch.float64)
        ac = torch.cumprod(1 - betas, 0)
        stride = next(i for i in range(1, T) if len(range(0, T, i)) == int(spec[4:]))
        self.timestep_map = list(range(0, T, stride))
        self.ac = ac[self.timestep_map]  # respaced alphas_cumprod
        self.ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.ac[:-1]])
        self.ac_next = torch.cat([self.ac[1:], torch.zeros(1, dtype=torch.float64)])
        self.map_t = torch.tensor(self.timestep_map)
        self.ac, self.ac_prev, self.ac_next, self.map_t = (v.to(DEV) for v in
                                                           (self.ac, self.ac_prev, self.ac_next, self.map_t))

    @staticmethod
    def ex(arr, t, x):
        return arr[t].float().view(-1, *([1] * (x.dim() - 1)))

    def pred_xstart(self, x, t, out):
        eps = out[:, : x.shape[1]]
        x0 = self.ex(torch.sqrt(1 / self.ac), t, x) * x - self.ex(torch.sqrt(1 / self.ac - 1), t, x) * eps
        return x0.clamp(-1, 1)

    def eps_from_x0(self, x, t, x0):
        return (self.ex(torch.sqrt(1 / self.ac), t, x) * x - x0) / self.ex(torch.sqrt(1 / self.ac - 1), t, x)

    def ddim_step(self, unet, grad_fn, x, t, y):
        tt = self.map_t[t]
        with torch.no_grad():
            out = unet(x, tt, y)
        x0 = self.pred_xstart(x, t, out)
        if grad_fn is not None:  # condition_score
            eps = self.eps_from_x0(x, t, x0) - torch.sqrt(1 - self.ex(self.ac, t, x)) * grad_fn(x, tt)
            x0 = self.ex(torch.sqrt(1 / self.ac), t, x) * x - self.ex(torch.sqrt(1 / self.ac - 1), t, x) * eps
        eps = self.eps_from_x0(x, t, x0)
        abp = self.ex(self.ac_prev, t, x)
        return x0 * abp.sqrt() + (1 - abp).sqrt() * eps

    def ddim_reverse_step(self, unet, x, t, y):
        with torch.no_grad():
            out = unet(x, self.map_t[t], y)
            x0 = self.pred_xstart(x, t, out)
            eps = self.eps_from_x0(x, t, x0)
            abn = self.ex(self.ac_next, t, x)
            return x0 * abn.sqrt() + (1 - abn).sqrt() * eps


def softmax_grad(clf, target, scale=100.0):
    def fn(x, t):
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            lp = F.log_softmax(clf(xi, t), dim=-1)
            sel = lp[range(len(lp)), target.view(-1)]
            return torch.autograd.grad(sel.sum(), xi)[0] * scale
    return fn


def build_adm(preset, classes=7):
    torch.manual_seed(0)
    u, e = presets(preset)
    unet = UNet(u["size"], u["mc"], u["mult"], u["nrb"], u["attn"], u["heads"], u["head_ch"]).eval()
    clf = EncoderUNet(e["size"], e["mc"], e["mult"], e["nrb"], e["attn"], e["head_ch"], out_ch=classes).eval()
    nonzero_outputs(unet, clf)
    return unet.to(DEV), clf.to(DEV), u["size"]


DEV = torch.device("cpu")
CPU_BEST = [float("inf")]  # min process CPU seconds per iteration (a check of the wall figure on a busy machine)


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def run_timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    sync()
    best = float("inf")
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
        CPU_BEST[0] = min(CPU_BEST[0], time.process_time() - c0)
    return best


def bench_guided(a):
    unet, clf, s = build_adm(a.preset)
    n = a.batch
    d = Diffusion(1000, "ddim100")
    x = torch.randn(n, 1, s, s, device=DEV)
    y = torch.ones(n, dtype=torch.long, device=DEV)
    t = torch.full((n,), 50, dtype=torch.long, device=DEV)  # respaced index 50 = original timestep 500
    g = softmax_grad(clf, torch.zeros(n, dtype=torch.long, device=DEV))
    if a.channels_last:
        unet, clf = unet.to(memory_format=torch.channels_last), clf.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return run_timed(lambda: d.ddim_step(unet, g, x, t, y), a.iters, a.warmup)


def bench_heatmaps(a):
    """One batch of heatmaps at the main CPU config's model size (configs/cpu/heatmaps_nih.toml)."""
    unet, clf, s = build_adm("tiny", classes=15)
    n = a.batch
    d = Diffusion(1000, a.respacing)
    J = d.timestep_map.index(500)
    x0 = torch.rand(n, 1, s, s, device=DEV) * 2 - 1
    y = torch.ones(n, dtype=torch.long, device=DEV)  # healthy
    g = softmax_grad(clf, torch.zeros(n, dtype=torch.long, device=DEV))

    def heatmap():
        x = x0
        for j in range(0, J):  # matched pattern: inversion 0..J-1, guided decode J..1
            x = d.ddim_reverse_step(unet, x, torch.full((n,), j, dtype=torch.long, device=DEV), y)
        for j in range(J, 0, -1):
            x = d.ddim_step(unet, g, x, torch.full((n,), j, dtype=torch.long, device=DEV), y)
        diff = (x0 - x).abs().sum(1)
        lo = diff.flatten(1).min(1)[0].view(-1, 1, 1)
        hi = diff.flatten(1).max(1)[0].view(-1, 1, 1)
        return (diff - lo) / (hi - lo).clamp_min(1e-12)

    with torch.no_grad():
        return run_timed(heatmap, a.iters, a.warmup)


# ---------------------------------------------------------------- OpenAI CLIP (model.py) and the fine-tune step
class ResidualAttentionBlock(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.attn = nn.MultiheadAttention(w, h)
        self.ln_1 = nn.LayerNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, 4 * w), QuickGELU(), nn.Linear(4 * w, w))
        self.ln_2 = nn.LayerNorm(w)

    def forward(self, x, mask=None):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Transformer(nn.Module):
    def __init__(self, w, layers, h):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(w, h) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class CLIP(nn.Module):
    def __init__(self, embed, image, patch, vw, vl, vh, ctx, vocab, tw, tl, th):
        super().__init__()
        g = image // patch
        self.conv1 = nn.Conv2d(3, vw, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(vw) * vw ** -0.5)
        self.vpos = nn.Parameter(torch.randn(g * g + 1, vw) * vw ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(vw), nn.LayerNorm(vw)
        self.visual = Transformer(vw, vl, vh)
        self.proj = nn.Parameter(torch.randn(vw, embed) * vw ** -0.5)
        self.token_embedding = nn.Embedding(vocab, tw)
        self.tpos = nn.Parameter(torch.randn(ctx, tw) * 0.01)
        self.transformer = Transformer(tw, tl, th)
        self.ln_final = nn.LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.randn(tw, embed) * tw ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, px):
        x = self.conv1(px).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1) + self.vpos
        x = self.visual(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj

    def encode_text(self, tok):
        L = tok.shape[1]
        x = self.token_embedding(tok) + self.tpos[:L]
        mask = torch.full((L, L), float("-inf"), device=tok.device).triu_(1)
        x = self.transformer(x.permute(1, 0, 2), mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), tok.argmax(-1)] @ self.text_projection


def clip_arch(preset):
    if preset == "tiny":
        return dict(embed=32, image=32, patch=8, vw=64, vl=2, vh=2, ctx=16, vocab=49408, tw=64, tl=2, th=2), 16
    return dict(embed=512, image=256, patch=32, vw=768, vl=12, vh=12, ctx=77, vocab=49408, tw=512, tl=12, th=8), 77


def bench_finetune(a):
    torch.manual_seed(0)
    arch, report_len = clip_arch(a.preset)
    model = CLIP(**arch).train().to(DEV)
    b = a.batch

    def tokens(n, length):
        t = torch.randint(1, arch["vocab"] - 2, (n, length))
        t[:, 0] = arch["vocab"] - 2
        t[:, -1] = arch["vocab"] - 1
        return t.to(DEV)

    px = torch.randn(b, 3, arch["image"], arch["image"], device=DEV)
    reports, prompts = tokens(b, report_len), tokens(14, 12)
    labels = (torch.rand(b, 14, device=DEV) > 0.7).float()
    decay = [p for n, p in model.named_parameters() if "bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-5, betas=(0.9, 0.999), eps=1e-8, foreach=a.foreach)
    s = math.exp(4.602)
    l2 = lambda v: v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def step():
        img, txt, cls = l2(model.encode_image(px)), l2(model.encode_text(reports)), l2(model.encode_text(prompts))
        logits = s * txt @ img.t()
        target = torch.arange(b, device=DEV)
        clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        bce = F.binary_cross_entropy_with_logits(s * img @ cls.t(), labels)
        loss = 0.7 * clip + 0.3 * bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run_timed(step, a.iters, a.warmup)


def bench_search(a):
    torch.manual_seed(0)
    db = F.normalize(torch.randn(a.rows, a.dim, device=DEV), dim=1)
    q = F.normalize(torch.randn(a.batch, a.dim, device=DEV), dim=1)
    with torch.no_grad():
        return run_timed(lambda: torch.topk(torch.mm(q, db.t()), a.k, dim=1), a.iters, a.warmup)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["guided", "heatmaps", "finetune", "search"])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--respacing", default="ddim20", help="heatmaps: ddimN (the main CPU config: ddim20)")
    p.add_argument("--channels-last", action="store_true", help="guided: channels-last UNet/classifier")
    p.add_argument("--foreach", action="store_true", help="finetune: AdamW(foreach=True)")
    p.add_argument("--rows", type=int, default=100000, help="search: database rows")
    p.add_argument("--dim", type=int, default=512, help="search: dimension")
    p.add_argument("--k", type=int, default=10, help="search: hits per query")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    global DEV
    DEV = torch.device(a.device)
    torch.set_num_threads(a.threads)
    sec = {"guided": bench_guided, "heatmaps": bench_heatmaps, "finetune": bench_finetune, "search": bench_search}[a.what](a)
    print(f"EAGER {a.what} seconds={sec:.6f} cpu_seconds={CPU_BEST[0]:.6f} iters={a.iters} threads={torch.get_num_threads()} "
          f"device={DEV} torch={torch.__version__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
