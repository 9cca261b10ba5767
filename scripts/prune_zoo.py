#!/usr/bin/env python3
"""Structured channel pruning of torchvision models, checked and timed.

Exports torchvision ResNet-18, MobileNetV2 1.0 and SqueezeNet 1.1 (random
init, eval mode, 1x3x224x224, opset 13) to ONNX, prunes 30% and 50% of the
channels of every prunable group with whittle (the prune_channels example
of whittle-compress), checks that the pruned models pass the ONNX checker
and that onnxruntime gives the same outputs as whittle, and measures the
single-thread latency of the unpruned and the 50% pruned model in whittle.

Needs torch/torchvision (not in CI): run it by hand and record the table in
docs/BENCHMARKS.md.

    python3 scripts/prune_zoo.py [--iters 30] [--out /tmp/prune_zoo]
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(name, path):
    import torch
    import torchvision

    torch.manual_seed(0)
    ctor = {
        "resnet18": torchvision.models.resnet18,
        "mobilenet_v2": torchvision.models.mobilenet_v2,
        "squeezenet1_1": torchvision.models.squeezenet1_1,
    }[name]
    model = ctor(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamo=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--out", default="/tmp/prune_zoo")
    ap.add_argument("--models", default="resnet18,mobilenet_v2,squeezenet1_1")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "whittle-compress",
                    "--example", "prune_channels"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "prune_channels")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    xin = os.path.join(args.out, "input.npy")
    np.save(xin, x)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    rows, bad = [], []
    for name in args.models.split(","):
        src = os.path.join(args.out, f"{name}.onnx")
        if not os.path.exists(src):
            export(name, src)
        for ratio in (0.3, 0.5):
            dst = os.path.join(args.out, f"{name}_{ratio}.onnx")
            yout = os.path.join(args.out, f"{name}_{ratio}_whittle.npy")
            cmd = [exe, src, dst, "--ratio", str(ratio), "--run", xin, yout]
            if ratio == 0.5:
                cmd += ["--bench", str(args.iters)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                bad.append(f"{name} {ratio}: {res.stderr.strip()}")
                continue
            onnx.checker.check_model(onnx.load(dst), full_check=True)
            sess = ort.InferenceSession(dst, so, providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            want = np.load(yout)
            diff = float(np.abs(got - want).max())
            if not np.allclose(got, want, atol=1e-4, rtol=1e-4):
                bad.append(f"{name} {ratio}: whittle vs onnxruntime differ by {diff}")
            m = re.search(r"params (\d+) -> (\d+)  MACs (\d+) -> (\d+)", res.stdout)
            lat = re.search(r"original ([\d.]+) ms, pruned ([\d.]+) ms, speedup ([\d.]+)x",
                            res.stdout)
            p0, p1, m0, m1 = map(int, m.groups())
            row = [name, f"{ratio:.0%}", f"{p0/1e6:.2f}M -> {p1/1e6:.2f}M",
                   f"{m0/1e9:.3f}G -> {m1/1e9:.3f}G", f"{diff:.1e}"]
            row += [f"{lat.group(1)} ms", f"{lat.group(2)} ms", f"{lat.group(3)}x"] if lat \
                else ["", "", ""]
            rows.append(row)
            print(res.stdout.splitlines()[-1] if lat else "", file=sys.stderr)
    print("| model | channels removed | params | MACs | max |whittle - ORT| "
          "| unpruned (1 thread) | pruned | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for b in bad:
        print("FAIL:", b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
