"""Reference numbers for the update ops
(crates/runtime/src/ops/grad/update_tests.rs): torch.optim on a
3x2 weight for three steps, the learning rate changed before the third.
w0[i] = sin(i + 1), grad at step t (0-based): 0.5 * cos(i * (t + 2) + 1),
all in float32. Run: python3 scripts/testgen/update_cases_gen.py (prints Rust literals)."""
import math

import torch

CASES = [
    ("sgd_plain", torch.optim.SGD, dict(lr=0.1)),
    ("sgd_momentum_wd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_dampening", torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("sgd_nesterov", torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001)),
    ("adam", torch.optim.Adam, dict(lr=0.01)),
    ("adam_wd", torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
]
N = 6
LR3 = 0.5  # factor applied to lr before the third step


def grad(t):
    return torch.tensor([0.5 * math.cos(i * (t + 2) + 1) for i in range(N)], dtype=torch.float32).reshape(3, 2)


for name, cls, kw in CASES:
    w = torch.nn.Parameter(torch.tensor([math.sin(i + 1) for i in range(N)], dtype=torch.float32).reshape(3, 2))
    opt = cls([w], foreach=False, **kw)
    for t in range(3):
        if t == 2:
            for g in opt.param_groups:
                g["lr"] = kw["lr"] * LR3
        w.grad = grad(t)
        opt.step()
    vals = ", ".join(str(v) for v in w.detach().flatten().numpy())
    print(f"const {name.upper()}: [f32; {N}] = [{vals}];")
