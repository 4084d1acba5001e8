"""gen_dense: PyTorch references for LayerNorm, GroupNorm (8 and 4 groups) and multi-head
attention built from matmul + softmax; read by tests/c/test_torch_dense.c.

Run with Debian's torch: /usr/bin/python3 tests/torch/gen_dense.py (writes tests/ref/*.bin).
Computed in float64 and written as float32, in autonad's layout (NCHW -> NHWC).
"""
import math

import torch

import refio

torch.manual_seed(0)
D = torch.float64


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def layernorm():
    x = torch.randn(2, 5, 24, dtype=D, requires_grad=True)
    ln = torch.nn.LayerNorm(24, eps=1e-6).to(D)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    y = ln(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    refio.write("layernorm", [x, ln.weight, ln.bias, y, dy, x.grad, ln.weight.grad, ln.bias.grad])


def groupnorm(groups):
    x = torch.randn(2, 32, 4, 3, dtype=D, requires_grad=True)  # NCHW
    gn = torch.nn.GroupNorm(groups, 32, eps=1e-5).to(D)
    with torch.no_grad():
        gn.weight.uniform_(0.5, 1.5)
        gn.bias.uniform_(-0.5, 0.5)
    y = gn(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    refio.write("groupnorm_g%d" % groups,
                [nhwc(x), gn.weight, gn.bias, nhwc(y), nhwc(dy), nhwc(x.grad), gn.weight.grad,
                 gn.bias.grad])


def attention():
    n, l, heads, d = 2, 16, 2, 32
    q, k, v = (torch.randn(n, l, heads * d, dtype=D, requires_grad=True) for _ in range(3))

    def split(t):  # [N, L, heads*d] -> [N, heads, L, d]
        return t.view(n, l, heads, d).transpose(1, 2)

    s = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d)
    p = torch.softmax(s, dim=-1)
    out = (p @ split(v)).transpose(1, 2).reshape(n, l, heads * d)
    dout = torch.randn_like(out)
    out.backward(dout)
    refio.write("attention", [q, k, v, out, dout, q.grad, k.grad, v.grad])


if __name__ == "__main__":
    layernorm()
    groupnorm(8)
    groupnorm(4)
    attention()
