"""gen_conv: PyTorch references for conv2d (tests/c/test_conv2d.c, test matches_pytorch).

Each file holds x, w, b, y, dx, dw, db in autonad's layout (NHWC maps, OHWI weights) for
the loss sum(y * y) / 2, whose dy is y itself. Run: /usr/bin/python3 tests/torch/gen_conv.py
"""
import torch

import refio


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def case(name, n, ci, co, hw, k, stride, pad, dilation, groups, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, ci, hw, hw, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(co, ci // groups, k, k, generator=g, dtype=torch.float64) * 0.3
    w.requires_grad_(True)
    b = torch.randn(co, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, b, stride, pad, dilation, groups)
    (y * y).sum().mul(0.5).backward()
    refio.write(name, [nhwc(x).float(), nhwc(w).float(), b.float(), nhwc(y).float(),
                       nhwc(x.grad).float(), nhwc(w.grad).float(), b.grad.float()])


if __name__ == "__main__":
    case("conv2d_grouped", 2, 6, 4, 9, 3, 2, 2, 2, 2, 1)
    case("conv2d_depthwise", 2, 16, 16, 8, 3, 1, 1, 1, 16, 2)
    case("conv2d_patch7", 2, 3, 8, 16, 7, 4, 3, 1, 1, 3)
