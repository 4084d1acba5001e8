"""gen_pointwise: PyTorch references for the pointwise and spatial operators, read by
tests/c/test_torch_pointwise.c. Adaptive average pooling, bilinear resize (both align_corners,
up and down), GELU, cross entropy (pixels with ignore label 255, and images), and a numpy
transcription of S2-MLPv2's spatial_shift1 / spatial_shift2.

Run with Debian's torch: /usr/bin/python3 tests/torch/gen_pointwise.py
Feature maps are written channels-last (NCHW -> NHWC); gradients use a random dy.
"""
import numpy as np
import torch
import torch.nn.functional as F

import refio

torch.manual_seed(0)
rng = np.random.default_rng(0)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def grad_of(fn, x):
    """(y, dy, dx) for y = fn(x) and a random dy."""
    x = x.clone().requires_grad_(True)
    y = fn(x)
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    return y.detach(), dy, dx


def adaptive_pool():
    x = torch.randn(2, 3, 7, 5)
    for oh, ow in [(3, 2), (1, 1), (2, 2), (3, 3), (6, 6)]:
        y, dy, dx = grad_of(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)), x)
        refio.write("adaptive_pool_%dx%d" % (oh, ow), [nhwc(x), nhwc(y), nhwc(dy), nhwc(dx)])


def resize():
    cases = {"up": ((5, 4), (9, 11)), "down": ((9, 11), (4, 3))}
    for name, (src, dst) in cases.items():
        x = torch.randn(2, 3, *src)
        for ac in (0, 1):
            y, dy, dx = grad_of(
                lambda t: F.interpolate(t, size=dst, mode="bilinear", align_corners=bool(ac)), x)
            refio.write("resize_ac%d_%s" % (ac, name), [nhwc(x), nhwc(y), nhwc(dy), nhwc(dx)])


def gelu():
    x = torch.linspace(-6, 6, 97).reshape(97)
    y, dy, dx = grad_of(lambda t: F.gelu(t), x)  # erf form (approximate='none')
    refio.write("gelu", [x, y, dy, dx])


def cross_entropy():
    # pixels: logits [2,4,5,5] NCHW (autonad [2,5,5,4]), labels [2,5,5] with some 255
    logits = torch.randn(2, 4, 5, 5) * 3
    labels = torch.randint(0, 4, (2, 5, 5))
    labels[torch.rand(2, 5, 5) < 0.2] = 255
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, labels, ignore_index=255)
    (dl,) = torch.autograd.grad(loss, lg)
    refio.write("ce_pixels", [nhwc(logits), labels.float(), loss.detach(), nhwc(dl)])
    # images: logits [6,5], labels [6]
    logits = torch.randn(6, 5) * 2
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, labels)
    (dl,) = torch.autograd.grad(loss, lg)
    refio.write("ce_images", [logits, labels.float(), loss.detach(), dl])


# S2-MLPv2's functions (x is (b, w, h, c) there: its dim 1 is our H, dim 2 our W), transcribed
# in numpy, whose overlapping slice assignment reads the source as it was before the write.
def spatial_shift1(x):
    b, w, h, c = x.shape
    x[:, 1:, :, :c // 4] = x[:, :w - 1, :, :c // 4]
    x[:, :w - 1, :, c // 4:c // 2] = x[:, 1:, :, c // 4:c // 2]
    x[:, :, 1:, c // 2:c * 3 // 4] = x[:, :, :h - 1, c // 2:c * 3 // 4]
    x[:, :, :h - 1, 3 * c // 4:] = x[:, :, 1:, 3 * c // 4:]
    return x


def spatial_shift2(x):
    b, w, h, c = x.shape
    x[:, :, 1:, :c // 4] = x[:, :, :h - 1, :c // 4]
    x[:, :, :h - 1, c // 4:c // 2] = x[:, :, 1:, c // 4:c // 2]
    x[:, 1:, :, c // 2:c * 3 // 4] = x[:, :w - 1, :, c // 2:c * 3 // 4]
    x[:, :w - 1, :, 3 * c // 4:] = x[:, 1:, :, 3 * c // 4:]
    return x


def shift():
    x = rng.standard_normal((2, 4, 5, 8)).astype(np.float32)
    refio.write("shift_s2mlpv2", [x, spatial_shift1(x.copy()), spatial_shift2(x.copy())])


if __name__ == "__main__":
    adaptive_pool()
    resize()
    gelu()
    cross_entropy()
    shift()
