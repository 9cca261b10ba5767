#!/usr/bin/env python3
"""onnxruntime CPU latency for one model, the peer baseline for `whittle bench`.

Session: CPUExecutionProvider, intra_op_num_threads=N, inter_op_num_threads=1,
sequential execution, graph optimisations ORT_ENABLE_ALL. Each iteration is a
single run() call timed with perf_counter_ns; warm-up runs are not counted.

Usage: python3 bench/ort_bench.py MODEL.onnx INPUT.npy [--threads N]
           [--iters N] [--warmup N] [--json] [--save-output OUT.npy]

--json also lists every timed iteration (times_ms) so that a caller can pool
several runs; --save-output writes the first output of the last run (for the
harness's agreement check).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("input", type=Path, help=".npy fed to the model's first input")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--save-output", type=Path, help="write the first output to this .npy")
    args = parser.parse_args()
    if args.threads < 1 or args.iters < 1 or args.warmup < 0:
        sys.exit("--threads and --iters must be >= 1, --warmup >= 0")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])

    inputs = sess.get_inputs()
    if len(inputs) != 1:
        sys.exit(f"{args.model}: expected 1 input, model has {len(inputs)}")
    x = np.load(args.input)
    feed = {inputs[0].name: x}

    for _ in range(args.warmup):
        sess.run(None, feed)
    times = np.empty(args.iters)
    outputs = None
    for i in range(args.iters):
        t0 = time.perf_counter_ns()
        outputs = sess.run(None, feed)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    if args.save_output is not None:
        np.save(args.save_output, outputs[0])

    median, p10, p90 = (float(v) for v in np.percentile(times, [50, 10, 90]))
    result = {
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "model": str(args.model),
        "input_shape": list(x.shape),
        "threads": args.threads,
        "iters": args.iters,
        "warmup": args.warmup,
        "median_ms": median,
        "p10_ms": p10,
        "p90_ms": p90,
        "min_ms": float(times.min()),
        "times_ms": times.tolist(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"onnxruntime {ort.__version__}  {args.model.name}  threads={args.threads}  iters={args.iters}")
        print(f"median {median:.3f} ms   p10 {p10:.3f} ms   p90 {p90:.3f} ms")


if __name__ == "__main__":
    main()
