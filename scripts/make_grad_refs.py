#!/usr/bin/env python3
"""Reference gradients for whittle-train's autodiff tests.

Builds three small PyTorch models, exports each to ONNX, and writes the
loss and the gradient of every parameter for one fixed batch to
crates/train/tests/data/<model>/ (one .npy per tensor; the whole folder
stays well under 1 MB).

BatchNorm: gradients are taken with the model in train mode (batch
statistics, as whittle's BatchNormMode::Train does), while the ONNX file is
exported in eval mode without constant folding, so BatchNormalization
stays a separate node (with running statistics) and every parameter keeps
its PyTorch name as an initializer.

Models:
  lenet_bn  LeNet-like CNN: Conv-BN-ReLU-MaxPool, Conv-BN-ReLU-AveragePool,
            Flatten, Gemm-ReLU-Gemm; softmax cross-entropy.
  mbv2      MobileNetV2-style inverted residual: 1x1 expand + BN + Clip(0,6),
            depthwise 3x3 + BN + HardSwish, 1x1 project + BN, residual Add,
            Concat with the block input, strided conv + Sigmoid,
            GlobalAveragePool, Gemm; softmax cross-entropy.
  mlp       x @ W1 + b1 (MatMul + broadcast Add), Sigmoid, Linear, ReLU,
            Linear; MSE against a target.

Usage: python3 scripts/make_grad_refs.py   (from the repository root)
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Pre-activation values minus each kink (ReLU at 0, Clip at 0 and 6,
# HardSwish at +-3) seen in the last forward pass. A batch is redrawn until
# every such value is at least MARGIN from its kink, so f32 rounding
# differences between frameworks cannot flip a mask and the references
# are stable.
PROBE = []
MARGIN = 2e-5


def kink(t, *points):
    for p in points:
        PROBE.append((t.detach() - p).abs().min().item())
    return t


OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "train", "tests", "data")


class LeNetBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(kink(self.bn1(self.conv1(x)), 0.0)), 2)
        x = F.avg_pool2d(F.relu(kink(self.bn2(self.conv2(x)), 0.0)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(kink(self.fc1(x), 0.0)))


class MbBlock(nn.Module):
    def __init__(self, c=8, expand=3, classes=5):
        super().__init__()
        h = c * expand
        self.expand = nn.Conv2d(c, h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(h)
        self.dw = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False)
        self.bn2 = nn.BatchNorm2d(h)
        self.project = nn.Conv2d(h, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(2 * c, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        y = torch.clamp(kink(self.bn1(self.expand(x)), 0.0, 6.0), 0.0, 6.0)
        y = F.hardswish(kink(self.bn2(self.dw(y)), -3.0, 3.0))
        y = self.bn3(self.project(y)) + x
        y = torch.cat([y, x], dim=1)
        y = torch.sigmoid(self.head(y))
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(y)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(20, 32) * 0.3)
        self.b1 = nn.Parameter(torch.randn(32) * 0.1)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 3)

    def forward(self, x):
        y = torch.sigmoid(x @ self.w1 + self.b1)
        return self.fc3(F.relu(kink(self.fc2(y), 0.0)))


def save(d, name, arr):
    np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(arr))


def run(name, model, draw, target, loss_kind):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.train()
    for _ in range(200):
        x = draw()
        PROBE.clear()
        with torch.no_grad():
            model(x)
        if min(PROBE) >= MARGIN:
            break
    else:
        raise SystemExit(f"{name}: no batch keeps clear of the activation kinks")
    # The probing passes moved the BatchNorm running statistics; that only
    # changes the exported running statistics, not the train-mode gradients.
    out = model(x)
    if loss_kind == "ce":
        loss = F.cross_entropy(out, target)
    else:
        loss = F.mse_loss(out, target)
    model.zero_grad()
    loss.backward()
    save(d, "x", x.numpy().astype(np.float32))
    if loss_kind == "ce":
        save(d, "labels", target.numpy().astype(np.int64))
    else:
        save(d, "target", target.numpy().astype(np.float32))
    save(d, "loss", np.array(loss.item(), dtype=np.float32))
    for pname, p in model.named_parameters():
        save(d, "grad." + pname, p.grad.numpy().astype(np.float32))
    model.eval()
    torch.onnx.export(
        model,
        (x,),
        os.path.join(d, "model.onnx"),
        input_names=["x"],
        output_names=["logits"],
        opset_version=14,
        do_constant_folding=False,
        dynamo=False,
    )


def main():
    torch.manual_seed(0)
    lenet = LeNetBN()
    # Non-trivial BN affine parameters and running statistics.
    for bn in (lenet.bn1, lenet.bn2):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    run("lenet_bn", lenet, lambda: torch.rand(4, 1, 28, 28), torch.tensor([3, 0, 7, 1]), "ce")

    mb = MbBlock()
    for bn in (mb.bn1, mb.bn2, mb.bn3):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    run("mbv2", mb, lambda: torch.randn(2, 8, 12, 12), torch.tensor([4, 1]), "ce")

    mlp = Mlp()
    run("mlp", mlp, lambda: torch.randn(6, 20), torch.randn(6, 3), "mse")


if __name__ == "__main__":
    main()
