"""supernet_ref: an independent PyTorch implementation of one autonad subnet, written from
docs/supernet.md alone, to check autonad's outputs, loss and weight gradients.

Tensors come and go in autonad's layout (feature maps NHWC, conv weights OHWI, linear weights
[out, in]) under the names of docs/supernet.md with the subnet's (extracted) shapes. Inside,
convolutions, norms and resizing run through torch.nn.functional in NCHW. Evaluation
semantics: no drop-path. MACs per image are counted by the layers as they run (see
docs/supernet.md, "Counting parameters and multiply-accumulates").
Used by gen_supernet.py and check_supernet_ref.py; run with Debian's /usr/bin/python3.
"""
import math

import torch
import torch.nn.functional as F

SLOTS = ["ppm1", "ppm2", "ppm3", "ppm4", "lateral3", "lateral2", "lateral1",
         "out1", "out2", "out3"]
CONV_TYPES = ["1x1", "3x3", "5x5", "dil3x3", "dw3x3"]
# type -> (super-kernel rows/cols taken, pad, dilation); dw3x3 is handled apart
KERNEL_VIEW = {"1x1": (slice(2, 3), 0, 1), "3x3": (slice(1, 4), 1, 1),
               "5x5": (slice(0, 5), 2, 1), "dil3x3": (slice(1, 4), 2, 2),
               "dw3x3": (slice(1, 4), 1, 1)}
HEAD_DIM = 32
LN_EPS = 1e-6
GN_EPS = 1e-5


def hidden(c, r):
    """The Mix-FFN hidden width floor(C * r)."""
    return int(math.floor(c * r))


def slot_widths(arch, slot, d):
    """(Ci, Co) of a decoder slot."""
    c4 = arch["width"][3]
    if slot.startswith("ppm"):
        return c4, c4 // 4
    if slot.startswith("lateral"):
        return arch["width"][int(slot[-1]) - 1], d
    return d, d


def slot_shapes(conv_type, ci, co):
    """The extracted shapes of a decoder slot: [dw, pw] for dw3x3, else [weight]."""
    if conv_type == "dw3x3":
        return [(min(ci, co), 3, 3, 1), (co, ci)]
    k = {"1x1": 1, "3x3": 3, "5x5": 5, "dil3x3": 3}[conv_type]
    return [(co, k, k, ci)]


def param_shapes(space, arch, head, classes, in_channels, d):
    """name -> shape of every weight of the subnet (docs/supernet.md names, extracted
    shapes), in a fixed order."""
    p = {}

    def lin(name, o, i, bias=True):
        p[name + ".weight"] = (o, i)
        if bias:
            p[name + ".bias"] = (o,)

    def norm(name, c):
        p[name + ".weight"] = (c,)
        p[name + ".bias"] = (c,)

    prev = in_channels
    for s in range(1, 5):
        st = space["stages"][s - 1]
        c, k = arch["width"][s - 1], st["patch_kernel"]
        p["stage%d.patch.weight" % s] = (c, k, k, prev)
        p["stage%d.patch.bias" % s] = (c,)
        norm("stage%d.patch_norm" % s, c)
        for b in range(1, arch["depth"][s - 1] + 1):
            pre = "stage%d.block%d." % (s, b)
            op = arch["op"][s - 1][b - 1]
            h, hd = c // HEAD_DIM, hidden(c, arch["ratio"][s - 1][b - 1])
            norm(pre + "norm1", c)
            lin(pre + "q", c, c)
            lin(pre + "kv", 2 * c, c)
            if op == "attention" and st["sr_ratio"] > 1:
                sr = st["sr_ratio"]
                p[pre + "sr.weight"] = (c, sr, sr, c)
                p[pre + "sr.bias"] = (c,)
                norm(pre + "sr_norm", c)
            elif op == "conv":
                lin(pre + "fc", 9, 3 * h)
                p[pre + "dep.weight"] = (c, 3, 3, 9)
                p[pre + "dep.bias"] = (c,)
                norm(pre + "conv_norm", c)
            elif op == "mlp":
                lin(pre + "reweight1", c // 4, c)
                lin(pre + "reweight2", 3 * c, c // 4)
                lin(pre + "mlp", c, c)
            lin(pre + "proj", c, c)
            norm(pre + "norm2", c)
            lin(pre + "fc1", hd, c)
            p[pre + "dw.weight"] = (hd, 3, 3, 1)
            p[pre + "dw.bias"] = (hd,)
            lin(pre + "fc2", c, hd)
        norm("stage%d.norm" % s, c)
        prev = c
    if head == "segmentation":
        for i, slot in enumerate(SLOTS):
            t = arch["decoder"]["conv"][i]
            ci, co = slot_widths(arch, slot, d)
            names = ["dw", "pw"] if t == "dw3x3" else ["weight"]
            for name, shape in zip(names, slot_shapes(t, ci, co)):
                p["dec.%s.%s" % (slot, name)] = shape
            norm("dec.%s.gn" % slot, co)
        c4 = arch["width"][3]
        p["dec.ppm_out.weight"] = (d, 1, 1, 2 * c4)
        norm("dec.ppm_out.gn", d)
        for name, o, i in (("fuse", d, 4 * d), ("seg1", d, d), ("seg2", classes, d)):
            p["dec.%s.weight" % name] = (o, 1, 1, i)
            p["dec.%s.bias" % name] = (o,)
            if name != "seg2":
                norm("dec.%s.gn" % name, o)
        p["head.out_conv.weight"] = (classes, 3, 3, classes)
    elif head == "classification":
        for s in range(1, 5):
            p["cls.fc%d.weight" % s] = (classes, arch["width"][s - 1])
        p["cls.bias"] = (classes,)
    else:
        raise ValueError("unknown head %r" % head)
    return p


def extract_slot(w_super, pw_super, conv_type, ci, co):
    """The subnet weights of a decoder slot from its super-kernel w_super [Co_max,5,5,Ci_max]
    (OHWI) and, for dw3x3, the super pointwise pw_super [Co_max, Ci_max], as in the spec's
    table: returns {"weight": ...} or {"dw": [u,3,3,1], "pw": [Co,Ci]} plus pad, dilation."""
    rows, pad, dil = KERNEL_VIEW[conv_type]
    if conv_type == "dw3x3":
        u = min(ci, co)
        dw = torch.stack([w_super[c, 1:4, 1:4, c] for c in range(u)]).unsqueeze(-1)
        return {"dw": dw, "pw": pw_super[:co, :ci]}, pad, dil
    return {"weight": w_super[:co, rows, rows, :ci]}, pad, dil


class Subnet:
    """One fixed subnet. forward(x, W) takes x [N,H,W,Cin] and the weight dict W (autonad
    layout and names) and returns the logits: [N,H,W,K] (segmentation) or [N,K]."""

    def __init__(self, space, arch, head, classes, in_channels, decoder_width=32, groups=8):
        self.space, self.arch, self.head = space, arch, head
        self.classes, self.in_channels = classes, in_channels
        self.d, self.groups = decoder_width, groups
        self.shapes = param_shapes(space, arch, head, classes, in_channels, decoder_width)

    # ---- counted layers (NHWC in and out) ----
    def _w(self, name):
        self.used.add(name)
        t = self.W[name]
        if tuple(t.shape) != tuple(self.shapes[name]):
            raise ValueError("%s has shape %s, the subnet needs %s"
                             % (name, tuple(t.shape), self.shapes[name]))
        return t

    def conv(self, x, wname, bname=None, stride=1, pad=0, dil=1, groups=1, w=None):
        w = self._w(wname) if w is None else w
        b = self._w(bname) if bname else None
        y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(0, 3, 1, 2), b, stride, pad, dil, groups)
        y = y.permute(0, 2, 3, 1)
        # Ho*Wo*Co*(Ci/groups)*k*k: w is [Co,k,k,Ci/groups]
        self.macs += y.shape[1] * y.shape[2] * w.numel()
        return y

    def linear(self, x, name, bias=True):
        w = self._w(name + ".weight")
        b = self._w(name + ".bias") if bias else None
        rows = x.numel() // x.shape[-1] // x.shape[0]
        self.macs += rows * w.shape[0] * w.shape[1]
        return F.linear(x, w, b)

    def ln(self, x, name):
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self._w(name + ".weight"), self._w(name + ".bias"), LN_EPS)

    def gn(self, x, name):
        y = F.group_norm(x.permute(0, 3, 1, 2), self.groups, self._w(name + ".weight"),
                         self._w(name + ".bias"), GN_EPS)
        return y.permute(0, 2, 3, 1)

    @staticmethod
    def resize(x, size, align_corners):
        y = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear",
                          align_corners=align_corners)
        return y.permute(0, 2, 3, 1)

    # ---- encoder ----
    def attention(self, x, pre, sr):
        n, hh, ww, c = x.shape
        h = c // HEAD_DIM
        q = self.linear(x, pre + "q")
        if sr > 1:
            xs = self.conv(x, pre + "sr.weight", pre + "sr.bias", stride=sr, pad=0)
            xs = self.ln(xs, pre + "sr_norm")
            kv = self.linear(xs, pre + "kv")
        else:
            kv = self.linear(x, pre + "kv")
        p, pk = hh * ww, kv.shape[1] * kv.shape[2]
        qh = q.reshape(n, p, h, HEAD_DIM).transpose(1, 2)                   # [N,h,P,32]
        kh = kv[..., :c].reshape(n, pk, h, HEAD_DIM).transpose(1, 2)         # [N,h,Pk,32]
        vh = kv[..., c:].reshape(n, pk, h, HEAD_DIM).transpose(1, 2)
        a = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(HEAD_DIM), dim=-1)
        o = (a @ vh).transpose(1, 2).reshape(n, hh, ww, c)
        self.macs += 2 * p * pk * c
        return self.linear(o, pre + "proj")

    def conv_mixer(self, x, pre):
        n, hh, ww, c = x.shape
        h = c // HEAD_DIM
        q = self.linear(x, pre + "q")
        kv = self.linear(x, pre + "kv")
        maps = torch.cat([q, kv], dim=-1).reshape(n, hh, ww, 3 * h, HEAD_DIM)  # [..., j, i]
        fw, fb = self._w(pre + "fc.weight"), self._w(pre + "fc.bias")
        # f[i*9 + k] = fc.b[k] + sum_j fc.w[k, j] map_j[i]
        f = torch.einsum("nyxji,kj->nyxik", maps, fw) + fb
        f = f.reshape(n, hh, ww, HEAD_DIM * 9)
        self.macs += hh * ww * 9 * 3 * h * HEAD_DIM
        y = self.conv(f, pre + "dep.weight", pre + "dep.bias", pad=1, groups=HEAD_DIM)
        y = F.gelu(self.ln(y, pre + "conv_norm"))
        return self.linear(y, pre + "proj")

    @staticmethod
    def shift(x, dirs):
        """Channel quarter i moves one pixel in direction dirs[i]; the vacated border row or
        column keeps its input value. down: out[h] = in[h-1] (rows, dim 1); right: columns."""
        c4 = x.shape[-1] // 4
        parts = []
        for i, d in enumerate(dirs):
            t = x[..., i * c4:(i + 1) * c4]
            if d == "down":
                t = torch.cat([t[:, :1], t[:, :-1]], dim=1)
            elif d == "up":
                t = torch.cat([t[:, 1:], t[:, -1:]], dim=1)
            elif d == "right":
                t = torch.cat([t[:, :, :1], t[:, :, :-1]], dim=2)
            elif d == "left":
                t = torch.cat([t[:, :, 1:], t[:, :, -1:]], dim=2)
            else:
                raise ValueError(d)
            parts.append(t)
        return torch.cat(parts, dim=-1)

    def mlp_mixer(self, x, pre):
        n, hh, ww, c = x.shape
        q = self.linear(x, pre + "q")
        kv = self.linear(x, pre + "kv")
        x1 = self.shift(q, ["down", "up", "right", "left"])
        x2 = self.shift(kv[..., :c], ["right", "left", "down", "up"])
        x3 = kv[..., c:]
        a = (x1 + x2 + x3).mean(dim=(1, 2))                                  # [N,C]
        r = self.linear(F.gelu(self.linear(a, pre + "reweight1")), pre + "reweight2")
        wgt = torch.softmax(r.reshape(n, c, 3), dim=-1)                      # r[n, 3c + i]
        y = (wgt[:, None, None, :, 0] * x1 + wgt[:, None, None, :, 1] * x2
             + wgt[:, None, None, :, 2] * x3)
        return self.linear(self.linear(y, pre + "mlp"), pre + "proj")

    def ffn(self, x, pre):
        y = self.linear(x, pre + "fc1")
        y = self.conv(y, pre + "dw.weight", pre + "dw.bias", pad=1, groups=y.shape[-1])
        return self.linear(F.gelu(y), pre + "fc2")

    def encoder(self, x):
        feats = []
        for s in range(1, 5):
            st = self.space["stages"][s - 1]
            k = st["patch_kernel"]
            x = self.conv(x, "stage%d.patch.weight" % s, "stage%d.patch.bias" % s,
                          stride=st["patch_stride"], pad=k // 2)
            x = self.ln(x, "stage%d.patch_norm" % s)
            for b in range(1, self.arch["depth"][s - 1] + 1):
                pre = "stage%d.block%d." % (s, b)
                op = self.arch["op"][s - 1][b - 1]
                y = self.ln(x, pre + "norm1")
                if op == "attention":
                    y = self.attention(y, pre, st["sr_ratio"])
                elif op == "conv":
                    y = self.conv_mixer(y, pre)
                elif op == "mlp":
                    y = self.mlp_mixer(y, pre)
                else:
                    raise ValueError("unknown operator %r" % op)
                x = x + y
                x = x + self.ffn(self.ln(x, pre + "norm2"), pre)
            self.stats["stage%d.residual_std" % s] = float(x.std())
            x = self.ln(x, "stage%d.norm" % s)
            feats.append(x)
        return feats

    # ---- MFAM decoder and heads ----
    def slot_conv(self, x, slot):
        t = self.arch["decoder"]["conv"][SLOTS.index(slot)]
        ci, co = slot_widths(self.arch, slot, self.d)
        if x.shape[-1] != ci:
            raise ValueError("slot %s gets %d channels, expects %d" % (slot, x.shape[-1], ci))
        if t == "dw3x3":
            u = min(ci, co)
            y = self.conv(x[..., :u], "dec.%s.dw" % slot, pad=1, groups=u)   # H*W*u*9
            if ci > u:  # channels >= u of the depthwise output are zero
                y = torch.cat([y, y.new_zeros(y.shape[:3] + (ci - u,))], dim=-1)
            pw = self._w("dec.%s.pw" % slot)
            return self.conv(y, "dec.%s.pw" % slot, w=pw.reshape(co, 1, 1, ci))
        _, pad, dil = KERNEL_VIEW[t]
        return self.conv(x, "dec.%s.weight" % slot, pad=pad, dil=dil)

    def decoder(self, feats, size):
        f1, f2, f3, f4 = feats
        h4, w4 = f4.shape[1:3]
        branches = [f4]
        for i in range(1, 5):
            p = self.arch["decoder"]["pool"][i - 1]
            y = F.adaptive_avg_pool2d(f4.permute(0, 3, 1, 2), p).permute(0, 2, 3, 1)
            y = F.relu(self.gn(self.slot_conv(y, "ppm%d" % i), "dec.ppm%d.gn" % i))
            branches.append(self.resize(y, (h4, w4), True))
        pm = self.conv(torch.cat(branches, dim=-1), "dec.ppm_out.weight")
        pm = F.relu(self.gn(pm, "dec.ppm_out.gn"))
        f, outs = pm, {}
        for s in (3, 2, 1):
            fs = feats[s - 1]
            lat = F.relu(self.gn(self.slot_conv(fs, "lateral%d" % s), "dec.lateral%d.gn" % s))
            f = self.resize(f, tuple(fs.shape[1:3]), False) + lat
            outs[s] = F.relu(self.gn(self.slot_conv(f, "out%d" % s), "dec.out%d.gn" % s))
        s1 = tuple(f1.shape[1:3])
        y = torch.cat([outs[1], self.resize(outs[2], s1, False), self.resize(outs[3], s1, False),
                       self.resize(pm, s1, False)], dim=-1)
        y = F.relu(self.gn(self.conv(y, "dec.fuse.weight", "dec.fuse.bias"), "dec.fuse.gn"))
        y = F.relu(self.gn(self.conv(y, "dec.seg1.weight", "dec.seg1.bias"), "dec.seg1.gn"))
        y = self.conv(y, "dec.seg2.weight", "dec.seg2.bias")
        self.stats["dec.seg2_std"] = float(y.std())
        y = self.resize(y, size, True)
        return self.conv(y, "head.out_conv.weight", pad=1)

    def classify(self, feats):
        out = self._w("cls.bias")
        for s, fs in enumerate(feats, 1):
            w = self._w("cls.fc%d.weight" % s)
            self.macs += w.numel()                       # one row per image
            out = out + fs.mean(dim=(1, 2)) @ w.t()
        return out

    def forward(self, x, W):
        """x [N,H,W,Cin]; W name -> tensor. Sets self.macs (per image), self.params, stats."""
        self.W, self.used, self.macs, self.stats = W, set(), 0, {}
        missing = set(self.shapes) - set(W)
        if missing:
            raise ValueError("missing weights: %s" % sorted(missing))
        feats = self.encoder(x)
        if self.head == "segmentation":
            y = self.decoder(feats, tuple(x.shape[1:3]))
        else:
            y = self.classify(feats)
        if self.used != set(self.shapes):
            raise ValueError("weights listed but never used: %s"
                             % sorted(set(self.shapes) - self.used))
        self.params = sum(W[n].numel() for n in self.used)
        self.stats["logits_std"] = float(y.std())
        return y


def cross_entropy(logits, labels):
    """Mean over labelled pixels (or images) of the cross entropy; label 255 is ignored.
    logits [N,H,W,K] with labels [N,H,W], or [N,K] with labels [N] (labels as floats)."""
    if logits.dim() == 4:
        return F.cross_entropy(logits.permute(0, 3, 1, 2), labels.long(), ignore_index=255)
    return F.cross_entropy(logits, labels.long(), ignore_index=255)


def run(net, x, labels, weights, dtype=torch.float64):
    """Forward, loss and backward in dtype. weights: name -> array-like (autonad layout).
    Returns dict: logits, loss, grads (name -> tensor, autonad layout), grad_input, macs,
    params, stats."""
    W = {n: torch.as_tensor(v).to(dtype).clone().requires_grad_(True) for n, v in weights.items()}
    xt = torch.as_tensor(x).to(dtype).clone().requires_grad_(True)
    logits = net.forward(xt, W)
    loss = cross_entropy(logits, torch.as_tensor(labels))
    loss.backward()
    grads = {n: (W[n].grad if W[n].grad is not None else torch.zeros_like(W[n])).detach()
             for n in W}
    return {"logits": logits.detach(), "loss": float(loss), "grads": grads,
            "grad_input": xt.grad.detach(), "macs": net.macs, "params": net.params,
            "stats": dict(net.stats)}
