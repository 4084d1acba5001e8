"""gen_supernet: writes the supernet reference cases tests/ref/supernet_case{1,2,3}.ckpt and the
small search space they live in, tests/lua/fixtures/space_small.lua.

Each case is one subnet of that space (three together use every mixer, attention with
sr > 1 and sr = 1, every decoder conv type, dw3x3 with Ci > Co and Ci <= Co, both heads):
random weights (autonad names and layout), an input [2,64,64,Cin], labels (255 = ignored),
and the float64 PyTorch results (supernet_ref.py) rounded to float32: logits, grad.input and
grad.<name> for every weight; meta {arch, head, classes, in_channels, decoder_width, groups,
loss, params, macs}.
Run: /usr/bin/python3 tests/torch/gen_supernet.py (Debian's torch 1.13; not in the suite).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckptio  # noqa: E402
import supernet_ref as ref  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

SPACE = {
    "name": "small",
    "head_dim": 32,
    "operators": ["attention", "conv", "mlp"],
    "drop_path": 0.1,
    "stages": [
        {"depth": [1, 2], "width": [32], "ratio": [7.5, 8, 8.5], "sr_ratio": 8,
         "patch_kernel": 7, "patch_stride": 4},
        {"depth": [1, 2], "width": [32, 64], "ratio": [7.5, 8, 8.5], "sr_ratio": 4,
         "patch_kernel": 3, "patch_stride": 2},
        {"depth": [1, 2], "width": [32, 64], "ratio": [3.5, 4, 4.5], "sr_ratio": 2,
         "patch_kernel": 3, "patch_stride": 2},
        {"depth": [1, 2], "width": [64, 96], "ratio": [3.5, 4, 4.5], "sr_ratio": 1,
         "patch_kernel": 3, "patch_stride": 2},
    ],
    "decoder": {
        "width": 32,
        "groups": 8,
        "conv_types": ["1x1", "3x3", "5x5", "dil3x3", "dw3x3"],
        "slots": ref.SLOTS,
        "pool_sizes": [[1], [1, 2], [2, 3], [5, 6]],
    },
}

# slots: ppm1 ppm2 ppm3 ppm4 lateral3 lateral2 lateral1 out1 out2 out3
CASES = [
    {   # segmentation, Cin 1: attention sr 4 / sr 2 / sr 1, conv, mlp
        "head": "segmentation", "classes": 4, "in_channels": 1, "seed": 1,
        "arch": {"depth": [1, 2, 2, 1], "width": [32, 32, 32, 96],
                 "ratio": [[8], [7.5, 8.5], [3.5, 4.5], [3.5]],
                 "op": [["mlp"], ["attention", "conv"], ["attention", "mlp"], ["attention"]],
                 "decoder": {"conv": ["1x1", "3x3", "dil3x3", "1x1", "dw3x3",
                                      "3x3", "1x1", "5x5", "1x1", "dil3x3"],
                             "pool": [1, 2, 3, 6]}},
    },
    {   # segmentation, Cin 3: conv at widths 32 and 96, attention sr 2 at width 64,
        # dw3x3 with Ci > Co (ppm1 96 -> 24, lateral3 64 -> 32) and Ci = Co (lateral2, out1)
        "head": "segmentation", "classes": 4, "in_channels": 3, "seed": 2,
        "arch": {"depth": [1, 2, 1, 1], "width": [32, 32, 64, 96],
                 "ratio": [[7.5], [8, 7.5], [4], [3.5]],
                 "op": [["conv"], ["mlp", "conv"], ["attention"], ["conv"]],
                 "decoder": {"conv": ["dw3x3", "3x3", "1x1", "dil3x3", "dw3x3",
                                      "dw3x3", "dil3x3", "dw3x3", "5x5", "3x3"],
                             "pool": [1, 1, 2, 5]}},
    },
    {   # classification, K 6: attention sr 8 in stage 1, conv and mlp at width 64
        "head": "classification", "classes": 6, "in_channels": 3, "seed": 3,
        "arch": {"depth": [1, 1, 1, 1], "width": [32, 32, 64, 64],
                 "ratio": [[8.5], [8], [4], [4.5]],
                 "op": [["attention"], ["conv"], ["mlp"], ["conv"]],
                 "decoder": {"conv": ["1x1"] * 10, "pool": [1, 1, 2, 5]}},
    },
]
N, H, W = 2, 64, 64


def lua_value(v, indent=""):
    if isinstance(v, dict):
        inner = indent + "    "
        keys = [k for k in ("name", "head_dim", "operators", "drop_path", "stages", "depth",
                            "width", "ratio", "sr_ratio", "patch_kernel", "patch_stride",
                            "decoder", "groups", "conv_types", "slots", "pool_sizes")
                if k in v]
        body = ",\n".join("%s%s = %s" % (inner, k, lua_value(v[k], inner)) for k in keys)
        return "{\n%s,\n%s}" % (body, indent)
    if isinstance(v, list):
        if v and isinstance(v[0], dict):
            inner = indent + "    "
            return "{\n%s,\n%s}" % (",\n".join(inner + lua_value(x, inner) for x in v), indent)
        return "{ %s }" % ", ".join(lua_value(x, indent) for x in v)
    if isinstance(v, str):
        return "'%s'" % v
    return repr(v)


def write_space():
    path = os.path.join(ROOT, "tests", "lua", "fixtures", "space_small.lua")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("-- A small search space for the supernet tests (written by "
                "tests/torch/gen_supernet.py;\n-- the cases tests/ref/supernet_case*.ckpt "
                "are subnets of it). Same format as searchspaces/autonad.lua.\n")
        f.write("return " + lua_value(SPACE) + "\n")


def random_weights(shapes, gen):
    """Weights N(0, 1/fan_in) (std 0.2 at fan-in 25: activations stay O(1)), biases
    N(0, 0.1^2), norm weights 1 + N(0, 0.1^2); rounded to float32."""
    out = {}
    for name, shape in shapes.items():
        is_norm = any(t in name for t in ("norm", ".gn."))
        if name.endswith(".bias") or name == "cls.bias":
            t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif is_norm:
            t = 1 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            fan_in = int(np.prod(shape[1:]))
            t = torch.randn(shape, generator=gen, dtype=torch.float64) / np.sqrt(fan_in)
        out[name] = t.float().numpy()
    return out


def make_case(i, case, verbose=True):
    gen = torch.Generator().manual_seed(100 + case["seed"])
    net = ref.Subnet(SPACE, case["arch"], case["head"], case["classes"], case["in_channels"],
                     SPACE["decoder"]["width"], SPACE["decoder"]["groups"])
    weights = random_weights(net.shapes, gen)
    x = torch.randn((N, H, W, case["in_channels"]), generator=gen).float().numpy()
    k = case["classes"]
    if case["head"] == "segmentation":
        labels = torch.randint(0, k, (N, H, W), generator=gen)
        labels[torch.rand((N, H, W), generator=gen) < 0.15] = 255
        labels[0, :8, :] = 255     # a whole ignored band too
    else:
        labels = torch.tensor([1, 4])
    labels = labels.float().numpy()
    r = ref.run(net, x, labels, weights, torch.float64)
    r32 = ref.run(net, x, labels, weights, torch.float32)   # how far float32 drifts
    drift = max(_rel(r32["logits"], r["logits"]),
                max(_rel(r32["grads"][n], r["grads"][n]) for n in weights),
                _rel(r32["grad_input"], r["grad_input"]))
    pairs = [(r32["logits"], r["logits"]), (r32["grad_input"], r["grad_input"])]
    pairs += [(r32["grads"][n], r["grads"][n]) for n in weights]
    elem_fail = sum(int(((a.double() - b).abs() > 1e-4 * b.abs() + 1e-5).sum()) for a, b in pairs)
    tensors = dict(weights)
    tensors["input"], tensors["labels"] = x, labels
    tensors["logits"] = r["logits"].float()
    tensors["grad.input"] = r["grad_input"].float()
    for n, g in r["grads"].items():
        tensors["grad." + n] = g.float()
    meta = {"arch": case["arch"], "head": case["head"], "classes": k,
            "in_channels": case["in_channels"], "decoder_width": SPACE["decoder"]["width"],
            "groups": SPACE["decoder"]["groups"], "loss": r["loss"], "params": r["params"],
            "macs": r["macs"]}
    path = os.path.join(ROOT, "tests", "ref", "supernet_case%d.ckpt" % i)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ckptio.write(path, tensors, meta)
    if verbose:
        print("case %d (%s, K=%d, Cin=%d): loss %.6f params %d macs %d  file %d bytes"
              % (i, case["head"], k, case["in_channels"], r["loss"], r["params"], r["macs"],
                 os.path.getsize(path)))
        print("   std: " + ", ".join("%s %.3f" % kv for kv in r["stats"].items()))
        print("   float32 torch vs float64: max rel err %.2e (per tensor, vs its max); "
              "%d elements outside 1e-4 |b| + 1e-5" % (drift, elem_fail))
    return r


def _rel(a, b):
    """max |a-b| / (max |b| + 1e-12), per tensor (what a 1e-4 relative check sees)."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / (b.abs().max() + 1e-12))


if __name__ == "__main__":
    torch.set_num_threads(1)
    write_space()
    for i, c in enumerate(CASES, 1):
        make_case(i, c)
