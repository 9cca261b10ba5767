#!/usr/bin/env python3
"""Export the benchmark models to bench/models/ (git-ignored).

Models are torchvision architectures (BSD-3-Clause) with random
initialisation from a fixed seed (weights=None; weights do not change speed,
and nothing is downloaded). BatchNorm statistics are then calibrated on seeded
noise batches and the BatchNorm affine parameters randomised: with torchvision's
initialisation alone every folded Conv bias is zero and MobileNetV2's outputs
shrink to about 1e-9, which would make output comparisons between runtimes
meaningless. Static shapes, opset 13, TorchScript exporter
(dynamo=False). Each model gets a matching seeded input next to it:
bench/models/<name>.onnx and bench/models/<name>.input.npy.

Usage: python3 bench/export_models.py [--out bench/models] [--opset 13]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

# name -> (constructor, input shape)
MODELS = {
    "mobilenet_v2_224": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
    "mobilenet_v2_035_144": (
        lambda: torchvision.models.mobilenet_v2(weights=None, width_mult=0.35),
        (1, 3, 144, 144),
    ),
    "resnet18_224": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
}


def calibrate_batchnorm(model: torch.nn.Module, shape: tuple[int, ...], batches: int = 4) -> None:
    """Gives every BatchNorm random affine parameters and running statistics
    measured on standard-normal batches (torch's seeded RNG), like a trained
    network's; leaves the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches
        model.train()
        for _ in range(batches):
            model(torch.randn(8, *shape[1:]))
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    for i, (name, (build, shape)) in enumerate(MODELS.items()):
        torch.manual_seed(1000 + i)
        model = build()
        calibrate_batchnorm(model, shape)
        x = np.random.default_rng(2000 + i).standard_normal(shape).astype(np.float32)
        path = args.out / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.from_numpy(x),),
                str(path),
                dynamo=False,
                opset_version=args.opset,
                input_names=["input"],
                output_names=["output"],
                do_constant_folding=True,
            )
        np.save(args.out / f"{name}.input.npy", x)
        params = sum(p.numel() for p in model.parameters())
        print(f"{path}  {params / 1e6:.2f}M params  {path.stat().st_size / 1e6:.1f} MB  input {list(shape)}")


if __name__ == "__main__":
    main()
