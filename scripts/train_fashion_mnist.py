#!/usr/bin/env python3
"""Train the Fashion-MNIST reference CNN and export it to ONNX.

Writes, under tests/models/:
* fashion_cnn.onnx          the float model (opset 13, dynamic batch dim
                            ``batch``, BatchNormalization kept in the graph in
                            inference form)
* fashion_cnn.json          how it was made and its float test accuracy as
                            measured by PyTorch and by onnxruntime (10k test set)
* fashion_cnn_ort_top1.npy  onnxruntime's top-1 predictions (int64) for the
                            first 500 test images, which whittle must reproduce

Input: ``input`` f32 [batch, 1, 28, 28], pixels scaled to [0, 1] (u8 / 255, no
mean/std), which is whittle eval's default preprocessing for u8 data. Output:
``logits`` f32 [batch, 10].

Data: Fashion-MNIST (Zalando Research, MIT licence) from the Debian package
``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist). Nothing is
downloaded. Weights are produced by this script from fixed seeds (project
licence, Apache-2.0).

Exporter: the TorchScript exporter (dynamo=False) with TrainingMode.PRESERVE
while in eval mode, so BN stays a node (whittle folds it itself).

About 10 minutes on 2 idle CPU cores (8 epochs; the committed model took 39
minutes on a shared, loaded machine). Usage:
    python3 scripts/train_fashion_mnist.py [--data DIR] [--out DIR] [--epochs N]
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

SEED = 20240607
DATA = Path("/usr/share/datasets/fashion-mnist")
N_PRED = 500


def read_idx(path: Path) -> np.ndarray:
    """Reads a (gzipped) IDX file of u8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not a u8 IDX file"
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, data: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(data / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(data / f"{split}-labels-idx1-ubyte.gz")
    # Same preprocessing as whittle's default for u8 data: x / 255 in f32.
    x = (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return x, y.astype(np.int64)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FashionCNN(nn.Module):
    """28x28 -> 14x14 -> 7x7 -> 3x3, then a linear classifier (~30k params)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, 16),
            nn.MaxPool2d(2),
            conv_block(16, 32),
            nn.MaxPool2d(2),
            conv_block(32, 64),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(64 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


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
    ap.add_argument("--out", type=Path, default=Path("tests/models"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(args.threads)
    xtr, ytr = load("train", args.data)
    xte, yte = load("t10k", args.data)

    model = FashionCNN()
    batch = 128
    steps = args.epochs * ((len(xtr) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
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
            # Light augmentation: random horizontal flips (clothes are symmetric enough).
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
            f"test acc {acc:.4f} ({time.time() - t0:.0f}s)",
            flush=True,
        )

    model.eval()
    torch_pred = predict(model, xte)
    torch_acc = float((torch_pred == yte).mean())

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "fashion_cnn.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 28, 28),),
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

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [sess.run(None, {"input": xte[i : i + 1000]})[0] for i in range(0, len(xte), 1000)]
    )
    ort_pred = logits.argmax(1)
    ort_acc = float((ort_pred == yte).mean())
    agree = float((ort_pred == torch_pred).mean())
    np.save(args.out / "fashion_cnn_ort_top1.npy", ort_pred[:N_PRED].astype(np.int64))

    info = {
        "model": "fashion_cnn.onnx",
        "made_by": "scripts/train_fashion_mnist.py",
        "dataset": "Fashion-MNIST (Zalando Research, MIT), Debian package dataset-fashion-mnist",
        "input": {"name": "input", "shape": ["batch", 1, 28, 28], "preprocessing": "u8 / 255"},
        "output": {"name": "logits", "shape": ["batch", 10]},
        "opset": 13,
        "ops": ops,
        "params": int(sum(p.numel() for p in model.parameters())),
        "seed": SEED,
        "epochs": args.epochs,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "test_accuracy": {"pytorch": torch_acc, "onnxruntime": ort_acc},
        "ort_vs_torch_prediction_agreement": agree,
        "ort_top1_first": N_PRED,
        "train_seconds": round(time.time() - t0),
    }
    (args.out / "fashion_cnn.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info["test_accuracy"]), f"agreement {agree:.4f}")


if __name__ == "__main__":
    main()
