#!/usr/bin/env python3
"""Time PyTorch training the Fashion-MNIST CNN from scratch, to compare with
`whittle train` on the same machine, model, batch size, optimizer and threads.

The model is the architecture of scripts/train_fashion_mnist.py (Conv-BN-ReLU
x3 with max pooling, then Linear), freshly initialised, trained with the same
recipe as the whittle command in docs/TRAINING.md: Adam (torch.optim.Adam,
L2 weight decay 0), cosine learning rate stepped per step after linear warmup,
batch 64, no augmentation, last partial batch dropped, per-epoch shuffling.
Prints one line per epoch (train loss, test top-1, seconds) and a JSON
summary with the median seconds per epoch.

Usage:
    python3 scripts/torch_train_timing.py [--epochs 5] [--batch 64] [--threads 2]
        [--lr 0.003] [--warmup 0.2] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fashion_mnist import DATA, FashionCNN, load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=float, default=0.2, help="epochs of linear warmup")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N samples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    xtr, ytr = load("train", DATA)
    xte, yte = load("t10k", DATA)
    if args.limit:
        xtr, ytr = xtr[: args.limit], ytr[: args.limit]
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xte_t = torch.from_numpy(xte)

    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    spe = len(xtr) // args.batch
    total = spe * args.epochs
    warm = round(args.warmup * spe)

    def lr_at(step: int) -> float:
        # The same closed form as whittle's LrSchedule (warmup + cosine).
        if step < warm:
            return args.lr * (step + 1) / warm
        t = (step - warm) / max(total - warm, 1)
        return 0.5 * args.lr * (1 + math.cos(math.pi * t))

    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    times = []
    step = 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        t0 = time.perf_counter()
        loss_sum = 0.0
        for b in range(spe):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr_t[idx]), ytr_t[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
        dt = time.perf_counter() - t0
        times.append(dt)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(xte_t[i : i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])
        acc = float((pred.numpy() == yte).mean())
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / spe:.4f} "
            f"test top-1 {100 * acc:.2f}% {dt:.1f} s",
            flush=True,
        )
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": args.threads,
                "batch": args.batch,
                "samples": len(xtr),
                "epochs": args.epochs,
                "seconds_per_epoch": times,
                "median_seconds_per_epoch": statistics.median(times),
                "test_top1": acc,
            }
        )
    )


if __name__ == "__main__":
    np.random.seed(0)
    main()
