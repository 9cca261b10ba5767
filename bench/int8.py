#!/usr/bin/env python3
"""int8 benchmark: whittle int8 vs whittle f32 vs onnxruntime int8 (QDQ), one run.

For each benchmark model (bench/export_models.py; exported if missing):
  * onnxruntime's int8: `quantize_static`, QDQ format, per-channel int8
    weights, uint8 activations (onnxruntime's defaults for x86), calibrated on
    seeded noise;
  * whittle's int8: `whittle quantize` on the same calibration samples;
then times, in interleaved rounds so that machine noise hits every variant
alike: whittle f32, whittle int8 (its own model), whittle running
onnxruntime's int8 model, onnxruntime f32 and onnxruntime int8. Prints the
median of the per-round medians and the ratios the quantization issue names:
whittle int8 / whittle f32 (target <= 0.6) and whittle int8 / onnxruntime
int8 (target <= 1).

Usage: python3 bench/int8.py [--threads 1] [--iters 50] [--rounds 5]
           [--models mobilenet_v2_224,resnet18_224] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = HERE / "models"
CALIB_SAMPLES = 32


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr}")
    return res.stdout


def ensure_models(names: list[str]) -> None:
    if all((MODELS / f"{n}.onnx").exists() for n in names):
        return
    run([sys.executable, str(HERE / "export_models.py"), "--out", str(MODELS)])


def calibration(name: str, shape: tuple[int, ...]) -> Path:
    """Seeded noise samples (x, with dummy labels y) shared by both quantizers."""
    path = MODELS / f"{name}.calib.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((CALIB_SAMPLES, *shape[1:])).astype(np.float32)
        np.savez(path, x=x, y=np.zeros(CALIB_SAMPLES, dtype=np.int64))
    return path


def ort_int8(name: str, calib: Path) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = MODELS / f"{name}.ort_int8.onnx"
    if out.exists():
        return out
    pre = MODELS / f"{name}.ort_pre.onnx"
    quant_pre_process(str(MODELS / f"{name}.onnx"), str(pre))
    x = np.load(calib)["x"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            import onnx

            self.input = onnx.load(str(pre)).graph.input[0].name
            self.it = iter(x)

        def get_next(self):
            s = next(self.it, None)
            return None if s is None else {self.input: s[None]}

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def whittle_int8(whittle: Path, name: str, calib: Path) -> Path:
    out = MODELS / f"{name}.whittle_int8.onnx"
    if not out.exists():
        run([str(whittle), "quantize", str(MODELS / f"{name}.onnx"), "-o", str(out),
             "--calib", str(calib), "--calib-samples", str(CALIB_SAMPLES)])
    return out


def whittle_ms(whittle: Path, model: Path, threads: int, iters: int) -> float:
    doc = json.loads(run([str(whittle), "bench", str(model), "--threads", str(threads),
                          "--iters", str(iters), "--json"]))
    return float(doc["median_ms"])


def ort_ms(model: Path, inp: Path, threads: int, iters: int) -> float:
    doc = json.loads(run([sys.executable, str(HERE / "ort_bench.py"), str(model), str(inp),
                          "--threads", str(threads), "--iters", str(iters), "--json"]))
    return float(doc["median_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="mobilenet_v2_224,resnet18_224")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    names = args.models.split(",")
    ensure_models(names)
    run(["cargo", "build", "--release", "--quiet", "--manifest-path", str(ROOT / "Cargo.toml"),
         "-p", "whittle-cli"])
    whittle = ROOT / "target" / "release" / "whittle"

    results = {}
    for name in names:
        inp = MODELS / f"{name}.input.npy"
        calib = calibration(name, np.load(inp).shape)
        variants = {
            "whittle_f32": lambda: whittle_ms(whittle, MODELS / f"{name}.onnx", args.threads, args.iters),
            "whittle_int8": lambda m=whittle_int8(whittle, name, calib): whittle_ms(
                whittle, m, args.threads, args.iters),
            "whittle_on_ort_int8": lambda m=ort_int8(name, calib): whittle_ms(
                whittle, m, args.threads, args.iters),
            "ort_f32": lambda: ort_ms(MODELS / f"{name}.onnx", inp, args.threads, args.iters),
            "ort_int8": lambda m=ort_int8(name, calib): ort_ms(m, inp, args.threads, args.iters),
        }
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for k, f in variants.items():
                samples[k].append(f())
        med = {k: statistics.median(v) for k, v in samples.items()}
        med["int8_over_f32"] = med["whittle_int8"] / med["whittle_f32"]
        med["int8_over_ort_int8"] = med["whittle_int8"] / med["ort_int8"]
        med["ort_int8_over_ort_f32"] = med["ort_int8"] / med["ort_f32"]
        results[name] = med

    if args.json:
        print(json.dumps({"threads": args.threads, "iters": args.iters, "rounds": args.rounds,
                          "models": results}, indent=2))
        return
    print(f"threads={args.threads} iters={args.iters} rounds={args.rounds} (medians of per-round medians, ms)")
    cols = ["whittle_f32", "whittle_int8", "whittle_on_ort_int8", "ort_f32", "ort_int8",
            "int8_over_f32", "int8_over_ort_int8", "ort_int8_over_ort_f32"]
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
