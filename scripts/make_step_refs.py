#!/usr/bin/env python3
"""Reference weights after a few optimizer steps, for whittle-train's fused
update tests (crates/train/tests/fused.rs).

Loads the LeNet+BN fixture of make_grad_refs.py (crates/train/tests/data/
lenet_bn: model.onnx, x.npy, labels.npy) into the same PyTorch module, then
runs STEPS steps in train mode on that one batch with
  sgd:  torch.optim.SGD(lr=0.05, momentum=0.9)
  adam: torch.optim.Adam(lr=1e-3)
(the learning rate halved before the last step, as a schedule would), and
writes every parameter and BatchNorm running statistic to
lenet_bn/steps/<opt>.<name>.npy (about 130 KB in all).

Usage: python3 scripts/make_step_refs.py   (from the repository root)
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from make_grad_refs import OUT, LeNetBN  # noqa: E402

STEPS = 5


def main():
    d = os.path.join(OUT, "lenet_bn")
    inits = {
        i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
        for i in onnx.load(os.path.join(d, "model.onnx")).graph.initializer
    }
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
    y = torch.from_numpy(np.load(os.path.join(d, "labels.npy")))
    out = os.path.join(d, "steps")
    os.makedirs(out, exist_ok=True)
    for name, make in [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False)),
    ]:
        model = LeNetBN()
        model.load_state_dict(inits, strict=False)
        model.train()
        opt = make(model.parameters())
        for t in range(STEPS):
            if t == STEPS - 1:
                for g in opt.param_groups:
                    g["lr"] *= 0.5
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        for k, v in model.state_dict().items():
            if "num_batches" in k:
                continue
            np.save(os.path.join(out, f"{name}.{k}.npy"), v.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
