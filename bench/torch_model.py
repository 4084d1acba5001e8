"""torch_model: one fixed AutoNAD subnet (docs/supernet.md) as a plain PyTorch nn.Module written
for speed (float32, nn.Conv2d / nn.Linear / nn.LayerNorm / nn.GroupNorm, tokens [N,L,C] in the
encoder, no per-layer bookkeeping), loading autonad's extracted weights from a checkpoint
(tests/torch/ckptio.py) so that it computes the same function. Used by bench/vs_torch.py.
Run with Debian's /usr/bin/python3 (torch 1.13). Correctness is the reference's job
(tests/torch/supernet_ref.py, float64); here `check_logits` compares with autonad's logits.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import ckptio  # noqa: E402

HEAD_DIM = 32
LN_EPS = 1e-6
GN_EPS = 1e-5
SLOTS = ["ppm1", "ppm2", "ppm3", "ppm4", "lateral3", "lateral2", "lateral1",
         "out1", "out2", "out3"]
# the fixed search space's per-stage settings (searchspaces/autonad.lua)
PATCH = [(7, 4), (3, 2), (3, 2), (3, 2)]   # (kernel, stride); pad = kernel // 2
SR = [8, 4, 2, 1]


def to_map(x, h, w, cl):
    """Tokens [N,L,C] -> map [N,C,H,W]: a channels-last view, or NCHW-contiguous when cl is
    False."""
    m = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
    return m if cl else m.contiguous()


def to_tokens(m):
    """Map [N,C,H,W] (either memory format) -> tokens [N,L,C] (a view when channels-last)."""
    return m.flatten(2).transpose(1, 2)


def ln(c):
    return nn.LayerNorm(c, eps=LN_EPS)


class Attention(nn.Module):
    def __init__(self, c, sr):
        super().__init__()
        self.h, self.sr_ratio = c // HEAD_DIM, sr
        self.q, self.kv, self.proj = nn.Linear(c, c), nn.Linear(c, 2 * c), nn.Linear(c, c)
        if sr > 1:
            self.sr = nn.Conv2d(c, c, sr, sr)
            self.sr_norm = ln(c)
        self.scale = HEAD_DIM ** -0.5

    def forward(self, x, h, w, cl):
        n, p, c = x.shape
        q = self.q(x).reshape(n, p, self.h, HEAD_DIM).transpose(1, 2)          # [N,h,P,32]
        if self.sr_ratio > 1:
            xs = self.sr_norm(to_tokens(self.sr(to_map(x, h, w, cl))))
        else:
            xs = x
        kv = self.kv(xs).reshape(n, -1, 2, self.h, HEAD_DIM).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]                                                    # [N,h,Pk,32]
        a = torch.softmax((q * self.scale) @ k.transpose(-1, -2), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(n, p, c)
        return self.proj(o)


class ConvMixer(nn.Module):
    """ACmix's convolution path, intended layout: f[i*9+k] = fc.b[k] + sum_j fc.w[k,j] map_j[i]
    over the 3h maps of 32 channels (q's heads, then k's, then v's), then a grouped 3x3 conv."""

    def __init__(self, c):
        super().__init__()
        self.h = c // HEAD_DIM
        self.q, self.kv, self.proj = nn.Linear(c, c), nn.Linear(c, 2 * c), nn.Linear(c, c)
        self.fc = nn.Linear(3 * self.h, 9)
        self.dep = nn.Conv2d(9 * HEAD_DIM, c, 3, padding=1, groups=HEAD_DIM)
        self.conv_norm = ln(c)

    def forward(self, x, h, w, cl):
        n, p, c = x.shape
        maps = torch.cat([self.q(x), self.kv(x)], dim=-1)                      # [N,P,3C]
        maps = maps.reshape(n, p, 3 * self.h, HEAD_DIM).transpose(2, 3)       # [N,P,32,3h]
        f = self.fc(maps).reshape(n, p, 9 * HEAD_DIM)                          # [N,P,32*9]
        y = to_tokens(self.dep(to_map(f, h, w, cl)))
        return self.proj(F.gelu(self.conv_norm(y)))


def shift(x, dirs):
    """x [N,H,W,C]: channel quarter i moves one pixel in direction dirs[i]; the vacated border
    row or column keeps its input value."""
    y = torch.empty_like(x)
    c4 = x.shape[-1] // 4
    for i, d in enumerate(dirs):
        s, t = slice(i * c4, (i + 1) * c4), y[..., i * c4:(i + 1) * c4]
        if d == "down":
            t[:, 1:] = x[:, :-1, :, s]
            t[:, :1] = x[:, :1, :, s]
        elif d == "up":
            t[:, :-1] = x[:, 1:, :, s]
            t[:, -1:] = x[:, -1:, :, s]
        elif d == "right":
            t[:, :, 1:] = x[:, :, :-1, s]
            t[:, :, :1] = x[:, :, :1, s]
        else:  # left
            t[:, :, :-1] = x[:, :, 1:, s]
            t[:, :, -1:] = x[:, :, -1:, s]
    return y


class MlpMixer(nn.Module):
    """S2-MLPv2 split attention over shifted q, shifted k and v."""

    def __init__(self, c):
        super().__init__()
        self.q, self.kv, self.proj = nn.Linear(c, c), nn.Linear(c, 2 * c), nn.Linear(c, c)
        self.reweight1, self.reweight2 = nn.Linear(c, c // 4), nn.Linear(c // 4, 3 * c)
        self.mlp = nn.Linear(c, c)

    def forward(self, x, h, w, cl):
        n, p, c = x.shape
        kv = self.kv(x).reshape(n, h, w, 2 * c)
        x1 = shift(self.q(x).reshape(n, h, w, c), ("down", "up", "right", "left"))
        x2 = shift(kv[..., :c], ("right", "left", "down", "up"))
        x3 = kv[..., c:]
        a = (x1 + x2 + x3).mean(dim=(1, 2))                                    # [N,C]
        r = self.reweight2(F.gelu(self.reweight1(a)))
        wgt = torch.softmax(r.reshape(n, 1, 1, c, 3), dim=-1)                  # r[n, 3c + i]
        y = wgt[..., 0] * x1 + wgt[..., 1] * x2 + wgt[..., 2] * x3
        return self.proj(self.mlp(y.reshape(n, p, c)))


class Block(nn.Module):
    def __init__(self, c, hd, op, sr):
        super().__init__()
        self.norm1, self.norm2 = ln(c), ln(c)
        self.mixer = {"attention": lambda: Attention(c, sr), "conv": lambda: ConvMixer(c),
                      "mlp": lambda: MlpMixer(c)}[op]()
        self.fc1, self.fc2 = nn.Linear(c, hd), nn.Linear(hd, c)
        self.dw = nn.Conv2d(hd, hd, 3, padding=1, groups=hd)

    def forward(self, x, h, w, cl):
        x = x + self.mixer(self.norm1(x), h, w, cl)
        y = to_tokens(self.dw(to_map(self.fc1(self.norm2(x)), h, w, cl)))
        return x + self.fc2(F.gelu(y))


class Stage(nn.Module):
    def __init__(self, s, cin, c, ratios, ops):
        super().__init__()
        k, st = PATCH[s]
        self.patch = nn.Conv2d(cin, c, k, st, k // 2)
        self.patch_norm, self.norm = ln(c), ln(c)
        self.blocks = nn.ModuleList(Block(c, int(math.floor(c * r)), op, SR[s])
                                    for r, op in zip(ratios, ops))

    def forward(self, m, cl):
        m = self.patch(m)
        h, w = m.shape[2:]
        x = self.patch_norm(to_tokens(m))
        for b in self.blocks:
            x = b(x, h, w, cl)
        return to_map(self.norm(x), h, w, cl)


class SlotConv(nn.Module):
    """A searchable decoder slot with a fixed type. dw3x3 with Ci > Co: channels >= u = Co of
    the depthwise output are zero, so the pointwise conv reads only the first u channels
    (the same result, without multiplying zeros)."""

    def __init__(self, kind, ci, co):
        super().__init__()
        self.kind, self.u = kind, min(ci, co)
        if kind == "dw3x3":
            self.dw = nn.Conv2d(self.u, self.u, 3, padding=1, groups=self.u, bias=False)
            self.pw = nn.Conv2d(self.u, co, 1, bias=False)
        else:
            k, pad, dil = {"1x1": (1, 0, 1), "3x3": (3, 1, 1), "5x5": (5, 2, 1),
                           "dil3x3": (3, 2, 2)}[kind]
            self.conv = nn.Conv2d(ci, co, k, padding=pad, dilation=dil, bias=False)

    def forward(self, x):
        if self.kind == "dw3x3":
            if x.shape[1] > self.u:
                x = x[:, :self.u]
            return self.pw(self.dw(x))
        return self.conv(x)


class ConvGNReLU(nn.Module):
    def __init__(self, conv, co, groups):
        super().__init__()
        self.conv, self.gn = conv, nn.GroupNorm(groups, co, eps=GN_EPS)

    def forward(self, x):
        return F.relu(self.gn(self.conv(x)))


class MFAM(nn.Module):
    def __init__(self, arch, d, classes, groups):
        super().__init__()
        c = arch["width"]
        kinds = dict(zip(SLOTS, arch["decoder"]["conv"]))
        self.pools = arch["decoder"]["pool"]
        self.ppm = nn.ModuleList(ConvGNReLU(SlotConv(kinds["ppm%d" % i], c[3], c[3] // 4),
                                            c[3] // 4, groups) for i in range(1, 5))
        self.ppm_out = ConvGNReLU(nn.Conv2d(2 * c[3], d, 1, bias=False), d, groups)
        self.lateral = nn.ModuleList(ConvGNReLU(SlotConv(kinds["lateral%d" % s], c[s - 1], d),
                                                d, groups) for s in (1, 2, 3))
        self.out = nn.ModuleList(ConvGNReLU(SlotConv(kinds["out%d" % s], d, d), d, groups)
                                 for s in (1, 2, 3))
        self.fuse = ConvGNReLU(nn.Conv2d(4 * d, d, 1), d, groups)
        self.seg1 = ConvGNReLU(nn.Conv2d(d, d, 1), d, groups)
        self.seg2 = nn.Conv2d(d, classes, 1)
        self.out_conv = nn.Conv2d(classes, classes, 3, padding=1, bias=False)

    def forward(self, feats, size):
        f1, f2, f3, f4 = feats
        s4 = f4.shape[2:]
        br = [f4]
        for p, m in zip(self.pools, self.ppm):
            y = m(F.adaptive_avg_pool2d(f4, p))
            br.append(F.interpolate(y, size=s4, mode="bilinear", align_corners=True))
        pm = self.ppm_out(torch.cat(br, dim=1))
        f, outs = pm, [None] * 3
        for s in (3, 2, 1):
            fs = feats[s - 1]
            lat = self.lateral[s - 1](fs)
            f = F.interpolate(f, size=fs.shape[2:], mode="bilinear", align_corners=False) + lat
            outs[s - 1] = self.out[s - 1](f)
        # fuse(cat(o1, up(o2), up(o3), up(pm))) computed as autonad computes it: the 1x1
        # conv commutes with the resize, so each part's D x D block of the fuse weight runs
        # at the part's own resolution before its resize (the same result, a quarter of the
        # full-resolution products; autonad's Mfam:fuse_step)
        s1, w, d = f1.shape[2:], self.fuse.conv.weight, self.fuse.conv.weight.shape[0]
        z = F.conv2d(outs[0], w[:, :d], self.fuse.conv.bias)
        for i, t in enumerate((outs[1], outs[2], pm), 1):
            z = z + F.interpolate(F.conv2d(t, w[:, i * d:(i + 1) * d]), size=s1, mode="bilinear",
                                  align_corners=False)
        y = self.seg2(self.seg1(F.relu(self.fuse.gn(z))))
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(y)


class Subnet(nn.Module):
    """x [N,Cin,H,W] -> logits [N,K,H,W]. channels_last: the encoder's token-to-map
    conversions stay channels-last views (else NCHW copies); convert the module and the input
    with .to(memory_format=torch.channels_last) as well for the decoder."""

    def __init__(self, arch, d, classes, in_channels=1, groups=8, channels_last=False):
        super().__init__()
        self.cl = channels_last
        cin, stages = in_channels, []
        for s in range(4):
            c = arch["width"][s]
            stages.append(Stage(s, cin, c, arch["ratio"][s], arch["op"][s]))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.decoder = MFAM(arch, d, classes, groups)

    def forward(self, x):
        feats, m = [], x
        for st in self.stages:
            m = st(m, self.cl)
            feats.append(m)
        return self.decoder(feats, x.shape[2:])

    def load_autonad(self, W):
        """Copies autonad's extracted weights (name -> array, autonad layout: conv OHWI,
        linear [out, in]) into this module; every weight must be used exactly once."""
        used = set()

        def get(name, conv=False):
            used.add(name)
            t = torch.as_tensor(W[name])
            return t.permute(0, 3, 1, 2) if conv else t

        def put(p, t):
            if tuple(p.shape) != tuple(t.shape):
                raise ValueError("shape %s, module expects %s" % (tuple(t.shape), tuple(p.shape)))
            with torch.no_grad():
                p.copy_(t)

        def lin(mod, name, bias=True):
            put(mod.weight, get(name + ".weight"))
            if bias:
                put(mod.bias, get(name + ".bias"))

        def conv(mod, name, bias=True):
            put(mod.weight, get(name + ".weight", conv=True))
            if bias:
                put(mod.bias, get(name + ".bias"))

        for s, st in enumerate(self.stages, 1):
            conv(st.patch, "stage%d.patch" % s)
            lin(st.patch_norm, "stage%d.patch_norm" % s)
            lin(st.norm, "stage%d.norm" % s)
            for b, blk in enumerate(st.blocks, 1):
                pre = "stage%d.block%d." % (s, b)
                for n in ("norm1", "norm2", "fc1", "fc2"):
                    lin(getattr(blk, n), pre + n)
                conv(blk.dw, pre + "dw")
                mx = blk.mixer
                for n in ("q", "kv", "proj"):
                    lin(getattr(mx, n), pre + n)
                if isinstance(mx, Attention) and mx.sr_ratio > 1:
                    conv(mx.sr, pre + "sr")
                    lin(mx.sr_norm, pre + "sr_norm")
                elif isinstance(mx, ConvMixer):
                    lin(mx.fc, pre + "fc")
                    conv(mx.dep, pre + "dep")
                    lin(mx.conv_norm, pre + "conv_norm")
                elif isinstance(mx, MlpMixer):
                    for n in ("reweight1", "reweight2", "mlp"):
                        lin(getattr(mx, n), pre + n)
        dec = self.decoder
        slots = {"ppm%d" % (i + 1): m for i, m in enumerate(dec.ppm)}
        slots.update({"lateral%d" % (i + 1): m for i, m in enumerate(dec.lateral)})
        slots.update({"out%d" % (i + 1): m for i, m in enumerate(dec.out)})
        for name, m in slots.items():
            sc, pre = m.conv, "dec.%s." % name
            if sc.kind == "dw3x3":
                put(sc.dw.weight, get(pre + "dw", conv=True))
                pw = get(pre + "pw")                                           # [Co, Ci]
                put(sc.pw.weight, pw[:, :sc.u, None, None])
            else:
                put(sc.conv.weight, get(pre + "weight", conv=True))
            lin(m.gn, pre + "gn")
        put(dec.ppm_out.conv.weight, get("dec.ppm_out.weight", conv=True))
        lin(dec.ppm_out.gn, "dec.ppm_out.gn")
        for n in ("fuse", "seg1"):
            conv(getattr(dec, n).conv, "dec." + n)
            lin(getattr(dec, n).gn, "dec.%s.gn" % n)
        conv(dec.seg2, "dec.seg2")
        put(dec.out_conv.weight, get("head.out_conv.weight", conv=True))
        unused = set(k for k in W if not k.startswith("bench.")) - used
        if unused:
            raise ValueError("weights never loaded: %s" % sorted(unused))
        return self


def load(path, channels_last=False):
    """(model in eval mode, checkpoint tensors, meta) from a checkpoint written by
    bench/vs_torch.lua prepare."""
    W, meta = ckptio.read(path)
    net = Subnet(meta["arch"], meta["decoder_width"], meta["classes"], meta["in_channels"],
                 meta["groups"], channels_last).load_autonad(W)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.eval(), W, meta


def nhwc_to_input(x, channels_last):
    """autonad's input [N,H,W,C] -> the module's [N,C,H,W] in the chosen memory format."""
    t = torch.as_tensor(x).permute(0, 3, 1, 2)
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def check_logits(net, W, channels_last, tol=1e-3):
    """max |torch - autonad| <= tol * max |autonad| on the checkpoint's input; returns the
    relative difference, raises when it is larger."""
    with torch.no_grad():
        y = net(nhwc_to_input(W["bench.input"], channels_last)).permute(0, 2, 3, 1)
    ref = torch.as_tensor(W["bench.logits"])
    rel = float((y - ref).abs().max() / ref.abs().max())
    if not rel <= tol:
        raise AssertionError("torch logits differ from autonad's by %.3g relative (> %g)"
                             % (rel, tol))
    return rel
