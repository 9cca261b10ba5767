#!/usr/bin/env python3
"""PyTorch's training memory for MobileNetV2 0.35 at 128x128, batch 1, full update.

The peer figure of whittle's training-memory table (docs/BENCHMARKS.md, issue
5): the bytes of the tensors autograd saves for backward in one step,
measured with ``torch.autograd.graph.saved_tensors_hooks`` (each storage
counted once), next to the parameters, their gradients and SGD momentum.
The architecture is the one of ``scripts/pretrain_mobilenetv2.py`` (1-channel
stem, 5 classes); the weights do not matter for memory.

Usage: python3 scripts/torch_train_memory.py [--side 128]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def build() -> nn.Module:
    spec = importlib.util.spec_from_file_location("pretrain", HERE / "pretrain_mobilenetv2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build()


def saved_bytes(model: nn.Module, side: int) -> int:
    """Unique bytes saved for backward by one forward pass + loss."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        key = (st.data_ptr(), st.nbytes())
        seen[key] = st.nbytes()
        return t

    x = torch.rand(1, 1, side, side)
    y = torch.tensor([1])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    # Parameters are saved too (by reference): count activations only.
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(b for (ptr, _), b in seen.items() if ptr not in params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build()
    n = sum(p.numel() for p in model.parameters())
    kb = lambda b: f"{b / 1024:.1f} KB"  # noqa: E731
    print(f"MobileNetV2 0.35, 1x1x{args.side}x{args.side}, batch 1, full update, torch {torch.__version__}\n")
    print("| PyTorch mode | saved tensors (activations) | parameters | gradients | SGD momentum | total |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("train (BN batch statistics)", "eval (BN frozen, as whittle's rows)"):
        model.train(mode.startswith("train"))
        model.zero_grad(set_to_none=True)
        saved = saved_bytes(model, args.side)
        p = 4 * n
        print(f"| {mode} | {kb(saved)} | {kb(p)} | {kb(p)} | {kb(p)} | {kb(saved + 3 * p)} |")


if __name__ == "__main__":
    main()
