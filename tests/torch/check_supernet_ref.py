"""check_supernet_ref: self-checks of the PyTorch supernet reference (supernet_ref.py) and of
the committed cases tests/ref/supernet_case*.ckpt. Exits non-zero on any failure.

- gradients: torch.autograd.gradcheck on tiny subnets (both heads, every mixer, every decoder
  conv type) w.r.t. the input and the small weights, and a central-difference directional
  derivative for every weight tensor;
- decoder conv types: each type's kernel view of a 5x5 super-kernel (extract_slot + slot_conv)
  against a plain loop written from the table of docs/supernet.md, with its MAC count;
- MACs and parameters of the reference cases against a closed formula written apart;
- the checkpoint files: names and shapes, and a float64 recomputation that matches them.
Run: /usr/bin/python3 tests/torch/check_supernet_ref.py (Debian's torch 1.13).
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckptio  # noqa: E402
import gen_supernet as gen  # noqa: E402
import supernet_ref as ref  # noqa: E402

FAILS = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILS.append(what)


def tiny_space(widths4=(32, 64)):
    sp = {k: v for k, v in gen.SPACE.items()}
    sp["stages"] = [dict(st) for st in gen.SPACE["stages"]]
    sp["stages"][3]["width"] = list(widths4)
    return sp


TINY = [
    ("segmentation", 3, 1, 16, 4, {
        "depth": [1, 1, 2, 1], "width": [32, 32, 32, 64], "ratio": [[1], [1], [1, 1], [1]],
        "op": [["mlp"], ["conv"], ["attention", "mlp"], ["attention"]],
        "decoder": {"conv": ["dw3x3", "5x5", "dil3x3", "3x3", "1x1",
                             "dw3x3", "3x3", "5x5", "dil3x3", "1x1"], "pool": [1, 2, 3, 6]}}),
    ("classification", 5, 2, 16, 4, {
        "depth": [1, 1, 1, 1], "width": [32, 32, 32, 32], "ratio": [[1], [1], [1], [1]],
        "op": [["conv"], ["attention"], ["conv"], ["mlp"]],
        "decoder": {"conv": ["1x1"] * 10, "pool": [1, 1, 2, 5]}}),
]


def tiny_setup(head, k, cin, d, groups, arch, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = ref.Subnet(tiny_space(), arch, head, k, cin, d, groups)
    w = {n: torch.as_tensor(v, dtype=torch.float64)
         for n, v in gen.random_weights(net.shapes, g).items()}
    x = torch.randn((1, size, size, cin), generator=g, dtype=torch.float64)
    if head == "segmentation":
        lab = torch.randint(0, k, (1, size, size), generator=g)
        lab[0, :3] = 255
    else:
        lab = torch.tensor([k - 1])
    return net, w, x, lab.double()


def check_gradients():
    for head, k, cin, d, groups, arch in TINY:
        net, w, x, lab = tiny_setup(head, k, cin, d, groups, arch)
        small = sorted(n for n in w if w[n].numel() <= 40)

        def f(*args):
            ww = dict(w)
            ww.update(zip(small, args[1:]))
            return ref.cross_entropy(net.forward(args[0], ww), lab)

        args = [x.clone().requires_grad_(True)] + [w[n].clone().requires_grad_(True)
                                                   for n in small]
        ok = torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-4,
                                      raise_exception=False)
        check(ok, "gradcheck %s: input and %d small weights (%d elements)"
              % (head, len(small), sum(a.numel() for a in args)))
        # every weight: central difference along a random direction vs <grad, dir>
        r = ref.run(net, x, lab, w)
        g = torch.Generator().manual_seed(7)
        worst, worst_name = 0.0, ""
        for n in sorted(w):
            v = torch.randn(w[n].shape, generator=g, dtype=torch.float64)
            v, e = v / v.norm(), 1e-5
            lp = ref.cross_entropy(net.forward(x, {**w, n: w[n] + e * v}), lab).item()
            lm = ref.cross_entropy(net.forward(x, {**w, n: w[n] - e * v}), lab).item()
            fd, an = (lp - lm) / (2 * e), float((r["grads"][n] * v).sum())
            err = abs(fd - an) / max(abs(an), 1e-6)
            if err > worst:
                worst, worst_name = err, n
        check(worst < 1e-5, "directional derivatives of all %d %s weights (worst %.1e, %s)"
              % (len(w), head, worst, worst_name))


def loop_slot(xs, wsup, pwsup, t, ci, co):
    """The table of docs/supernet.md, read directly off the super-kernel: x [H,W,Ci]."""
    hh, ww = xs.shape[:2]
    taps = {"1x1": [(2, 2, 0, 0)],
            "3x3": [(a, b, a - 2, b - 2) for a in range(1, 4) for b in range(1, 4)],
            "5x5": [(a, b, a - 2, b - 2) for a in range(5) for b in range(5)],
            "dil3x3": [(a, b, 2 * (a - 2), 2 * (b - 2)) for a in range(1, 4) for b in range(1, 4)],
            "dw3x3": [(a, b, a - 2, b - 2) for a in range(1, 4) for b in range(1, 4)]}[t]
    out = np.zeros((hh, ww, co))
    dw = np.zeros((hh, ww, ci))
    for y in range(hh):
        for x in range(ww):
            for ky, kx, dy, dx in taps:
                yy, xx = y + dy, x + dx
                if not (0 <= yy < hh and 0 <= xx < ww):
                    continue
                if t == "dw3x3":
                    for c in range(min(ci, co)):
                        dw[y, x, c] += wsup[c, ky, kx, c] * xs[yy, xx, c]
                else:
                    out[y, x] += wsup[:co, ky, kx, :ci] @ xs[yy, xx]
    if t == "dw3x3":
        out = dw @ pwsup[:co, :ci].T
    return out


def check_conv_types():
    g = torch.Generator().manual_seed(3)
    wsup = torch.randn((6, 5, 5, 7), generator=g, dtype=torch.float64)
    pwsup = torch.randn((6, 7), generator=g, dtype=torch.float64)
    hh = ww = 6
    for ci, co in ((5, 3), (3, 5), (4, 4)):
        x = torch.randn((1, hh, ww, ci), generator=g, dtype=torch.float64)
        for t in ref.CONV_TYPES:
            arch = {"width": [ci, 32, 32, 64], "decoder": {"conv": [t] * 10}}
            net = ref.Subnet.__new__(ref.Subnet)
            net.arch, net.d = arch, co
            views, pad, dil = ref.extract_slot(wsup, pwsup, t, ci, co)
            net.W = {"dec.lateral1." + k: v for k, v in views.items()}
            net.shapes = {n: tuple(v.shape) for n, v in net.W.items()}
            net.used, net.macs = set(), 0
            y = net.slot_conv(x, "lateral1")[0].numpy()
            want = loop_slot(x[0].numpy(), wsup.numpy(), pwsup.numpy(), t, ci, co)
            err = float(np.abs(y - want).max())
            kk = {"1x1": 1, "3x3": 9, "5x5": 25, "dil3x3": 9}.get(t)
            macs = hh * ww * (co * ci * kk if kk else min(ci, co) * 9 + co * ci)
            shapes_ok = all(tuple(v.shape) == s for v, s in zip(
                views.values(), ref.slot_shapes(t, ci, co)))
            check(err < 1e-12 and net.macs == macs and shapes_ok,
                  "conv type %-6s Ci %d Co %d: kernel view, pad, dilation (err %.1e), "
                  "MACs %d, extracted shapes" % (t, ci, co, err, net.macs))


def bare_net(W):
    net = ref.Subnet.__new__(ref.Subnet)
    net.W, net.shapes = W, {n: tuple(v.shape) for n, v in W.items()}
    net.used, net.macs, net.stats = set(), 0, {}
    return net


def check_mixers():
    """The mixers' index conventions against plain loops written from the spec's formulas."""
    g = torch.Generator().manual_seed(5)
    n, hh, ww, c = 1, 3, 4, 64
    h = c // 32

    def rnd(*shape):
        return torch.randn(shape, generator=g, dtype=torch.float64)

    x = rnd(n, hh, ww, c)
    W = {"q.weight": rnd(c, c), "q.bias": rnd(c), "kv.weight": rnd(2 * c, c),
         "kv.bias": rnd(2 * c), "proj.weight": torch.eye(c, dtype=torch.float64),
         "proj.bias": torch.zeros(c, dtype=torch.float64)}
    q = (x @ W["q.weight"].T + W["q.bias"])[0].numpy()
    kv = (x @ W["kv.weight"].T + W["kv.bias"])[0].numpy()
    k, v = kv[..., :c], kv[..., c:]

    # shift: quarter i moves one pixel in direction i; the vacated border keeps its value
    t = rnd(1, hh, ww, 8)[0].numpy()
    want = t.copy()
    for y in range(hh):
        for xx in range(ww):
            want[y, xx, 0:2] = t[max(y - 1, 0), xx, 0:2]          # down
            want[y, xx, 2:4] = t[min(y + 1, hh - 1), xx, 2:4]     # up
            want[y, xx, 4:6] = t[y, max(xx - 1, 0), 4:6]          # right
            want[y, xx, 6:8] = t[y, min(xx + 1, ww - 1), 6:8]     # left
    got = ref.Subnet.shift(torch.as_tensor(t)[None], ["down", "up", "right", "left"])[0]
    check(np.allclose(got.numpy(), want, atol=0, rtol=0), "shift directions and border rule")

    # attention (sr = 1): per head softmax(q k^T / sqrt(32)) v over all pixels
    net = bare_net(W)
    got = net.attention(x, "", 1)[0].numpy()
    want = np.zeros((hh, ww, c))
    qf, kf, vf = q.reshape(-1, c), k.reshape(-1, c), v.reshape(-1, c)
    for i in range(h):
        sl = slice(32 * i, 32 * i + 32)
        for p in range(hh * ww):
            a = np.array([qf[p, sl] @ kf[r, sl] for r in range(hh * ww)]) / math.sqrt(32)
            a = np.exp(a - a.max()); a /= a.sum()
            want.reshape(-1, c)[p, sl] = a @ vf[:, sl]
    check(np.abs(got - want).max() < 1e-10 and net.macs == 2 * 12 * 12 * c + 4 * 12 * c * c,
          "attention heads, scale, MACs")

    # conv mixer: f[i*9+k] = fc.b[k] + sum_j fc.w[k,j] map_j[i], then the 32-group conv
    W.update({"fc.weight": rnd(9, 3 * h), "fc.bias": rnd(9), "dep.weight": rnd(c, 3, 3, 9),
              "dep.bias": rnd(c), "conv_norm.weight": torch.ones(c, dtype=torch.float64),
              "conv_norm.bias": torch.zeros(c, dtype=torch.float64)})
    maps = [q[..., 32 * j:32 * j + 32] for j in range(h)] + \
        [k[..., 32 * j:32 * j + 32] for j in range(h)] + [v[..., 32 * j:32 * j + 32] for j in range(h)]
    fw, fb = W["fc.weight"].numpy(), W["fc.bias"].numpy()
    f = np.zeros((hh, ww, 288))
    for i in range(32):
        for kk in range(9):
            f[..., i * 9 + kk] = fb[kk] + sum(fw[kk, j] * maps[j][..., i] for j in range(3 * h))
    dep, db = W["dep.weight"].numpy(), W["dep.bias"].numpy()
    y = np.zeros((hh, ww, c)) + db
    per = c // 32                                   # output channels per group
    for o in range(c):
        grp = o // per
        for yy in range(hh):
            for xx in range(ww):
                for a in range(3):
                    for b in range(3):
                        sy, sx = yy + a - 1, xx + b - 1
                        if 0 <= sy < hh and 0 <= sx < ww:
                            y[yy, xx, o] += dep[o, a, b] @ f[sy, sx, 9 * grp:9 * grp + 9]
    y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-6)
    y = 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    got = bare_net(W).conv_mixer(x, "")[0].numpy()
    check(np.abs(got - y).max() < 1e-9, "conv mixer: fc layout over q/k/v maps, 32-group conv")

    # mlp mixer: w_i[c] = softmax_i(r[3c + i]); proj(mlp(y))
    W.update({"reweight1.weight": rnd(c // 4, c), "reweight1.bias": rnd(c // 4),
              "reweight2.weight": rnd(3 * c, c // 4), "reweight2.bias": rnd(3 * c),
              "mlp.weight": torch.eye(c, dtype=torch.float64),
              "mlp.bias": torch.zeros(c, dtype=torch.float64)})
    x1 = ref.Subnet.shift(torch.as_tensor(q)[None], ["down", "up", "right", "left"])[0].numpy()
    x2 = ref.Subnet.shift(torch.as_tensor(k)[None], ["right", "left", "down", "up"])[0].numpy()
    a = (x1 + x2 + v).mean(axis=(0, 1))
    z = W["reweight1.weight"].numpy() @ a + W["reweight1.bias"].numpy()
    z = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    r = W["reweight2.weight"].numpy() @ z + W["reweight2.bias"].numpy()
    want = np.zeros((hh, ww, c))
    for ch in range(c):
        e = np.exp(r[3 * ch:3 * ch + 3] - r[3 * ch:3 * ch + 3].max()); e /= e.sum()
        want[..., ch] = e[0] * x1[..., ch] + e[1] * x2[..., ch] + e[2] * v[..., ch]
    got = bare_net(W).mlp_mixer(x, "")[0].numpy()
    check(np.abs(got - want).max() < 1e-10, "mlp mixer: split attention weights r[3c + i]")


def closed_form(space, arch, head, k, cin, d, size):
    """MACs per image and parameters by formula (docs/supernet.md counting section)."""
    def out(n, kk, st):
        return (n + 2 * (kk // 2) - kk) // st + 1

    def slot(t, ci, co):
        return {"1x1": co * ci, "3x3": 9 * co * ci, "5x5": 25 * co * ci, "dil3x3": 9 * co * ci,
                "dw3x3": 9 * min(ci, co) + co * ci}[t]

    macs, params, n, prev, sizes = 0, 0, size, cin, []
    for s, st in enumerate(space["stages"]):
        c, kk = arch["width"][s], st["patch_kernel"]
        n = out(n, kk, st["patch_stride"])
        p, h = n * n, c // 32
        sizes.append(n)
        macs += p * c * kk * kk * prev
        params += c * kk * kk * prev + 3 * c + 2 * c
        for b in range(arch["depth"][s]):
            op, hd = arch["op"][s][b], int(math.floor(c * arch["ratio"][s][b]))
            macs += 2 * p * c * c + p * c * hd * 2 + p * hd * 9
            params += 4 * c + (c * c + c) * 2 + 2 * c * c + 2 * c      # norms, q, proj, kv
            params += 2 * c * hd + hd + 9 * hd + hd + c                 # fc1, dw, fc2
            if op == "attention":
                sr = st["sr_ratio"]
                pk = (n // sr) ** 2
                macs += pk * 2 * c * c + 2 * p * pk * c + (pk * c * c * sr * sr if sr > 1 else 0)
                params += (c * c * sr * sr + 3 * c) if sr > 1 else 0
            elif op == "conv":
                macs += p * 2 * c * c + p * 9 * 3 * h * 32 + p * c * 81
                params += 27 * h + 9 + 81 * c + c + 2 * c
            else:
                macs += p * 2 * c * c + c * c // 4 + c // 4 * 3 * c + p * c * c
                params += c * c // 4 + c // 4 + 3 * c * c // 4 + 3 * c + c * c + c
        prev = c
    if head == "classification":
        return macs + k * sum(arch["width"]), params + k * sum(arch["width"]) + k
    c4, convs, pools = arch["width"][3], arch["decoder"]["conv"], arch["decoder"]["pool"]

    def slot_params(t, ci, co):
        return slot(t, ci, co) + 2 * co

    for i in range(4):
        macs += pools[i] ** 2 * slot(convs[i], c4, c4 // 4)
        params += slot_params(convs[i], c4, c4 // 4)
    macs += sizes[3] ** 2 * d * 2 * c4
    params += d * 2 * c4 + 2 * d
    for j, s in enumerate((3, 2, 1)):
        macs += sizes[s - 1] ** 2 * slot(convs[4 + j], arch["width"][s - 1], d)
        params += slot_params(convs[4 + j], arch["width"][s - 1], d)
        macs += sizes[s - 1] ** 2 * slot(convs[7 + s - 1], d, d)
        params += slot_params(convs[7 + s - 1], d, d)
    p1 = sizes[0] ** 2
    macs += p1 * (4 * d * d + d * d + k * d) + size * size * k * k * 9
    params += 4 * d * d + 3 * d + d * d + 3 * d + k * d + k + 9 * k * k
    return macs, params


def check_cases():
    for i, case in enumerate(gen.CASES, 1):
        path = os.path.join(gen.ROOT, "tests", "ref", "supernet_case%d.ckpt" % i)
        t, meta = ckptio.read(path)
        net = ref.Subnet(gen.SPACE, meta["arch"], meta["head"], meta["classes"],
                         meta["in_channels"], meta["decoder_width"], meta["groups"])
        names = set(net.shapes)
        want = names | {"input", "labels", "logits", "grad.input"} | {"grad." + n for n in names}
        check(set(t) == want and all(t[n].shape == net.shapes[n] == t["grad." + n].shape
                                     for n in names),
              "case %d: tensor names and shapes (%d weights)" % (i, len(names)))
        check(meta["arch"] == case["arch"], "case %d: arch in meta matches gen_supernet" % i)
        r = ref.run(net, t["input"], t["labels"], {n: t[n] for n in names})
        errs = [gen._rel(r["logits"], torch.as_tensor(t["logits"]))]
        errs += [gen._rel(r["grads"][n], torch.as_tensor(t["grad." + n])) for n in names]
        errs.append(gen._rel(r["grad_input"], torch.as_tensor(t["grad.input"])))
        check(max(errs) < 1e-6 and abs(r["loss"] - meta["loss"]) < 1e-12,
              "case %d: recomputed logits, loss and gradients match the file (%.1e)"
              % (i, max(errs)))
        macs, params = closed_form(gen.SPACE, meta["arch"], meta["head"], meta["classes"],
                                   meta["in_channels"], meta["decoder_width"], gen.H)
        check(macs == meta["macs"] == r["macs"] and params == meta["params"] == r["params"],
              "case %d: MACs %d (formula %d), params %d (formula %d)"
              % (i, meta["macs"], macs, meta["params"], params))
        lab = t["labels"]
        if meta["head"] == "segmentation":
            frac = float((lab == 255).mean())
            check(0.05 < frac < 0.5, "case %d: %.0f%% of pixels ignored" % (i, 100 * frac))


def check_ckptio():
    a = {"b.w": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.ones(4, np.float32)}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.ckpt")
        ckptio.write(p, a, {"k": [1, 2.5, "s"]})
        t, meta = ckptio.read(p)
        raw = open(p, "rb").read()
    ok = meta == {"k": [1, 2.5, "s"]} and all(np.array_equal(t[n], a[n]) for n in a)
    ok = ok and raw[:8] == b"NADCKPT1" and raw.index(b'"name":"a"') < raw.index(b'"name":"b.w"')
    check(ok, "ckptio: round trip, magic, tensors sorted by name")


if __name__ == "__main__":
    torch.set_num_threads(1)
    check_ckptio()
    check_conv_types()
    check_mixers()
    check_gradients()
    check_cases()
    print("%d failed" % len(FAILS))
    sys.exit(1 if FAILS else 0)
