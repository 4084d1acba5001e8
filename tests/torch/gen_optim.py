"""gen_optim: PyTorch 1.13 references for the optimisers (tests/c/test_optim.c replays them).

Each file tests/ref/optim_<name>.bin holds: the hyper-parameters as a 1-dim tensor
[lr, momentum or beta1, dampening or beta2, weight_decay, nesterov or eps], the initial
param [3,5], the 5 gradients [3,5] fed in order, then the param after each of the 5 steps.
Run: /usr/bin/python3 tests/torch/gen_optim.py
"""
import torch

import refio

STEPS = 5


def run(name, make, hyper):
    gen = torch.Generator().manual_seed(7)
    p0 = torch.rand(3, 5, generator=gen) * 2 - 1
    grads = [torch.rand(3, 5, generator=gen) * 2 - 1 for _ in range(STEPS)]
    p = p0.clone().requires_grad_(True)
    opt = make([p])
    after = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        after.append(p.detach().clone())
    refio.write("optim_" + name, [torch.tensor(hyper, dtype=torch.float32), p0] + grads + after)


def main():
    torch.set_num_threads(1)
    run("sgd_momentum",
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        [0.1, 0.9, 0.1, 0.01, 0])
    run("sgd_nesterov",
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        [0.1, 0.9, 0.0, 0.01, 1])
    run("adam",
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
        [0.01, 0.9, 0.999, 0.01, 1e-8])
    run("adamw",
        lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.05),
        [0.01, 0.9, 0.999, 0.05, 1e-8])


if __name__ == "__main__":
    main()
