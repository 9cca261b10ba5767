#!/usr/bin/env python3
"""Pretrain a MobileNetV2 width 0.35 on Fashion-MNIST classes 0-4 and export it.

The backbone of whittle's transfer-learning acceptance (issue 5): whittle
fine-tunes it on classes 5-9 with its own trainer, the classifier Gemm
re-initialised by whittle.

Writes, under tests/fixtures/transfer/:
* model.onnx   torchvision's MobileNetV2(width_mult=0.35, num_classes=5) with a
               1-channel stem, eval mode, opset 13, BatchNormalization kept as
               nodes, ReLU6 as Clip; input ``input`` f32 [batch, 1, 32, 32],
               output ``logits`` f32 [batch, 5]
* model.json   how it was made, parameter count, test accuracy on classes 0-4
               (PyTorch and onnxruntime)

Input: Fashion-MNIST 28x28 u8 images / 255, zero-padded by 2 pixels on each
side to 32x32 (no resize, so whittle's Rust side reproduces it exactly).
32x32 keeps CPU training cheap; the network is fully convolutional up to a
global average pool, so the same graph compiles at 128x128 for the memory
table (``--input-shape input=1x1x128x128``).

Data: Fashion-MNIST (Zalando Research, MIT licence) from the Debian package
``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist); nothing is
downloaded. Architecture: torchvision (BSD-3-Clause). Weights: made by this
script from a fixed seed (project licence, Apache-2.0).

Usage: python3 scripts/pretrain_mobilenetv2.py [--epochs 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torchvision.models import mobilenet_v2

SEED = 20250101
DATA = Path("/usr/share/datasets/fashion-mnist")
SIZE = 32
PAD = (SIZE - 28) // 2
CLASSES = 5


def read_idx(path: Path) -> np.ndarray:
    """Reads a (gzipped) IDX file of u8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not a u8 IDX file"
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, classes: range, data: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """Images of `classes` as f32 [N, 1, 32, 32] (u8 / 255, zero-padded) and
    labels shifted to start at 0."""
    x = read_idx(data / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(data / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    keep = (y >= classes.start) & (y < classes.stop)
    x = x[keep].astype(np.float32) / np.float32(255.0)
    x = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)))[:, None, :, :]
    return np.ascontiguousarray(x), y[keep] - classes.start


def build(num_classes: int = CLASSES) -> nn.Module:
    """torchvision MobileNetV2 0.35 with a 1-channel stem."""
    model = mobilenet_v2(width_mult=0.35, num_classes=num_classes)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        1, stem.out_channels, 3, stride=stem.stride, padding=stem.padding, bias=False
    )
    nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    return model


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out.append(model(torch.from_numpy(x[i : i + 1000])).argmax(1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/transfer"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(args.threads)
    xtr, ytr = load("train", range(0, CLASSES), args.data)
    xte, yte = load("t10k", range(0, CLASSES), args.data)

    model = build()
    batch = 128
    steps = args.epochs * ((len(xtr) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            xb = xtr_t[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            opt.zero_grad()
            loss = loss_fn(model(xb), ytr_t[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = float((predict(model, xte) == yte).mean())
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(xtr):.4f} "
            f"test acc (classes 0-4) {acc:.4f} ({time.time() - t0:.0f}s)",
            flush=True,
        )

    model.eval()
    torch_pred = predict(model, xte)
    torch_acc = float((torch_pred == yte).mean())

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, SIZE, SIZE),),
        str(onnx_path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=13,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=True,
        dynamo=False,
    )
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    assert "BatchNormalization" in ops, f"BN was folded by the exporter: {ops}"
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 1, "one classifier Gemm expected"

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [sess.run(None, {"input": xte[i : i + 1000]})[0] for i in range(0, len(xte), 1000)]
    )
    ort_acc = float((logits.argmax(1) == yte).mean())
    info = {
        "model": "model.onnx",
        "made_by": "scripts/pretrain_mobilenetv2.py",
        "architecture": "torchvision MobileNetV2(width_mult=0.35, num_classes=5), 1-channel stem",
        "dataset": "Fashion-MNIST classes 0-4 (Zalando Research, MIT), Debian dataset-fashion-mnist",
        "input": {
            "name": "input",
            "shape": ["batch", 1, SIZE, SIZE],
            "preprocessing": "u8 / 255, zero-padded 2 px per side",
        },
        "output": {"name": "logits", "shape": ["batch", CLASSES]},
        "classifier": {"node": gemms[0].name, "weight": gemms[0].input[1], "bias": gemms[0].input[2]},
        "opset": 13,
        "ops": ops,
        "params": int(sum(p.numel() for p in model.parameters())),
        "file_bytes": onnx_path.stat().st_size,
        "seed": SEED,
        "epochs": args.epochs,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "test_accuracy_classes_0_4": {"pytorch": torch_acc, "onnxruntime": ort_acc},
        "train_seconds": round(time.time() - t0),
    }
    (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
