#!/usr/bin/env python3
"""Generate the fixture zoo: small PyTorch models exported to ONNX, with
onnxruntime reference outputs, under tests/fixtures/.

Provenance and licences
-----------------------
* Every model is built here with random initialisation from fixed seeds; no
  pretrained weights are downloaded or used. The weights are data produced by
  this script (project licence, Apache-2.0).
* Architectures: MobileNetV2 and the ResNet BasicBlock come from torchvision
  (BSD-3-Clause), instantiated with ``weights=None``. The other architectures
  (MLP, LeNet-style CNN, DS-CNN after "Hello Edge", Fire/Inception-style
  branches, LSTM/GRU heads, nn.TransformerEncoder) are written here with
  torch.nn building blocks (PyTorch, BSD-3-Clause).
* Inputs are seeded standard-normal noise; no data set is used.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``).
In torch 2.15 it still works and gives the classic graphs people meet in the
wild (Gemm, Shape->Gather->Unsqueeze->Concat->Reshape chains for dynamic
batch). The dynamo exporter needs onnxscript, which is not required here.
Models with BatchNorm are exported with ``TrainingMode.PRESERVE`` while in
eval mode: that keeps the BatchNormalization nodes (inference form) in the
graph instead of letting the exporter fold them into Conv, so whittle's own
BN folding is exercised. BN running statistics are made non-trivial by
running the model in train mode on seeded noise before export.

Reference outputs come from onnxruntime (CPU EP, default session options).
The script asserts that onnxruntime agrees with PyTorch and with the ONNX
reference evaluator (onnx.reference) within the fixture tolerance, so a
fixture is never committed with a broken export.

Usage: python3 scripts/make_fixtures.py [--out tests/fixtures] [--only NAME ...]
Requirements: scripts/requirements-dev.txt
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

# Elementwise check used here and by the Rust tests:
# |got - ref| <= ATOL + RTOL * |ref|.
ATOL = 1e-4
RTOL = 1e-5

EXPORTER = f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__.split('+')[0]}"


# ----------------------------------------------------------------- models


class Mlp(nn.Module):
    """Flatten + Linear/BN/ReLU stack on a 28x28 image."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MlpDynamic(nn.Module):
    """MLP whose flatten uses the runtime batch size, so that with a dynamic
    batch axis the exporter emits Shape->Gather->Unsqueeze->Concat->Reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        x = torch.relu(self.fc1(x))
        return torch.softmax(self.fc2(x), dim=1)


class LeNet(nn.Module):
    """LeNet-5 style CNN for 1x28x28 (conv/BN/relu/maxpool, then linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mobilenet_v2_035() -> nn.Module:
    # 10 classes instead of 1000 keeps the classifier (1280 x classes) small.
    return torchvision.models.mobilenet_v2(weights=None, width_mult=0.35, num_classes=10)


class ResNetSmall(nn.Module):
    """CIFAR-style ResNet: 3 stages (16/32/64 channels) of 2 BasicBlocks at
    32x32; stages 2 and 3 start with a stride-2 block whose shortcut is a 1x1
    conv + BN downsample."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )
            blocks.append(BasicBlock(cin, cout, stride=stride, downsample=down))
            blocks.append(BasicBlock(cout, cout))
            cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class DsCnnKws(nn.Module):
    """DS-CNN (small) from "Hello Edge: Keyword Spotting on Microcontrollers"
    (Zhang et al. 2017): 10x4 stride-2 conv with TF "SAME" padding (an
    explicit asymmetric ZeroPad2d, exported as Pad), 4 depthwise-separable
    blocks of 64 channels, average pool, 12-way linear head. Input is 49
    frames x 10 MFCCs."""

    def __init__(self, channels: int = 64, classes: int = 12) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ZeroPad2d((1, 1, 4, 5)),  # left, right, top, bottom -> 25x5 out
            nn.Conv2d(1, channels, (10, 4), stride=2),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        for _ in range(4):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
        layers += [nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(channels, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def transformer_encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(
        d_model=64,
        nhead=4,
        dim_feedforward=128,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
    )
    return nn.TransformerEncoder(
        layer, num_layers=2, norm=nn.LayerNorm(64), enable_nested_tensor=False
    )


class LstmModel(nn.Module):
    """2-layer LSTM over 20 steps; linear head on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(10, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


class GruModel(nn.Module):
    """Bidirectional 1-layer GRU; linear head applied at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(10, 24, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out)


class Fire(nn.Module):
    """SqueezeNet Fire module: 1x1 squeeze, then parallel 1x1 and 3x3
    expands joined by Concat."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], dim=1)


class Inception(nn.Module):
    """GoogLeNet-style block: 1x1, 1x1->3x3, 1x1->5x5, maxpool->1x1
    branches joined by Concat."""

    def __init__(self, cin: int) -> None:
        super().__init__()

        def cbr(i: int, o: int, k: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.b1 = cbr(cin, 16, 1)
        self.b3 = nn.Sequential(cbr(cin, 16, 1), cbr(16, 24, 3))
        self.b5 = nn.Sequential(cbr(cin, 8, 1), cbr(8, 8, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), cbr(cin, 8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class ConcatBranches(nn.Module):
    """Stem conv, ceil-mode maxpool, two Fire modules, an Inception block,
    1x1 conv classifier and global average pool (SqueezeNet-style head)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(32, 16, 32, 32),
            Fire(64, 16, 32, 32),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Inception(64),
            nn.Conv2d(56, 10, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ------------------------------------------------------------ fixture spec


@dataclass
class Spec:
    """One fixture: how to build the model and what to feed it."""

    name: str
    build: Callable[[], nn.Module]
    inputs: list[tuple[str, tuple[int, ...]]]
    outputs: list[str]
    opset: int
    description: str
    # Axis name per input/output index, e.g. {"input": {0: "batch"}}.
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


SPECS: list[Spec] = [
    Spec(
        "mlp",
        Mlp,
        [("input", (1, 1, 28, 28))],
        ["logits"],
        13,
        "Flatten + Linear(784,128)/BatchNorm1d/ReLU + Linear(128,64)/ReLU + Linear(64,10)",
    ),
    Spec(
        "mlp_dynamic",
        MlpDynamic,
        [("input", (3, 1, 8, 8))],
        ["probs"],
        13,
        "dynamic batch: reshape(x.shape[0], -1) -> Shape/Gather/Unsqueeze/Concat/Reshape, "
        "Linear/ReLU/Linear/Softmax; reference computed at batch 3",
        {"input": {0: "batch"}, "probs": {0: "batch"}},
    ),
    Spec(
        "lenet",
        LeNet,
        [("input", (1, 1, 28, 28))],
        ["logits"],
        13,
        "LeNet-5 style: conv5x5/BN/ReLU/maxpool x2, Linear 400-120-84-10",
    ),
    Spec(
        "mobilenetv2_035_96",
        mobilenet_v2_035,
        [("input", (1, 3, 96, 96))],
        ["logits"],
        13,
        "torchvision mobilenet_v2(width_mult=0.35, num_classes=10), random init, 96x96",
    ),
    Spec(
        "resnet_small",
        ResNetSmall,
        [("input", (1, 3, 32, 32))],
        ["logits"],
        15,
        "CIFAR-style ResNet, 3 stages x 2 torchvision BasicBlocks (16/32/64 ch), "
        "1x1-conv downsample shortcuts, 32x32",
    ),
    Spec(
        "dscnn_kws",
        DsCnnKws,
        [("input", (1, 1, 49, 10))],
        ["logits"],
        13,
        "Hello Edge DS-CNN (S): Pad + conv10x4/s2, 4 depthwise-separable blocks (64 ch), "
        "AvgPool, Linear 12; input 49 frames x 10 MFCC",
    ),
    Spec(
        "transformer_encoder",
        transformer_encoder,
        [("input", (1, 16, 64))],
        ["output"],
        17,
        "nn.TransformerEncoder: 2 layers, d_model 64, 4 heads, ffn 128, GELU (Erf), "
        "post-norm LayerNorm + final LayerNorm, batch_first, seq 16",
    ),
    Spec(
        "lstm_model",
        LstmModel,
        [("input", (1, 20, 10))],
        ["logits"],
        14,
        "2-layer LSTM (10->32), batch_first, seq 20; Linear(32,5) on the last step",
    ),
    Spec(
        "gru_model",
        GruModel,
        [("input", (1, 20, 10))],
        ["logits"],
        14,
        "bidirectional GRU (10->24), batch_first, seq 20; Linear(48,5) at every step",
    ),
    Spec(
        "concat_branches",
        ConcatBranches,
        [("input", (1, 3, 64, 64))],
        ["logits"],
        13,
        "stem conv/BN/ReLU, ceil-mode maxpool, 2 SqueezeNet Fire modules, an Inception block "
        "(1x1, 3x3, 5x5, maxpool-proj branches), 1x1 conv head, global avg pool",
    ),
]


# ------------------------------------------------------------------ build


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def stable_seed(name: str) -> int:
    # Python's hash() is salted per process; this is not.
    return sum((i + 1) * b for i, b in enumerate(name.encode())) % (2**31)


def prepare(model: nn.Module, inputs: list[torch.Tensor], seed: int) -> nn.Module:
    """Give BatchNorm layers non-trivial affine parameters and running
    statistics, then switch to eval mode.

    Running stats are accumulated (cumulative average) from train-mode passes
    over seeded noise, so they are far from the 0/1 defaults yet keep
    activations of deep random nets in a sane range."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.2)
            bn.reset_running_stats()
            bn.momentum = None
        if bns:
            model.train()
            for _ in range(4):
                batch = [
                    torch.randn((8, *t.shape[1:]), generator=gen) * 1.5 + 0.3 for t in inputs
                ]
                model(*batch)
    return model.eval()


def make_inputs(spec: Spec, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _, shape in spec.inputs]


def model_dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in vi.type.tensor_type.shape.dim
    ]


def check_close(name: str, got: np.ndarray, ref: np.ndarray) -> float:
    """Exit unless `got` matches `ref` within the fixture tolerance; return the max abs diff."""
    if got.shape != ref.shape:
        sys.exit(f"{name}: shape {got.shape} != {ref.shape}")
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = ATOL + RTOL * np.abs(ref.astype(np.float64))
    if not np.all(diff <= bound):
        sys.exit(f"{name}: onnxruntime disagrees with the reference, max abs diff {diff.max():.3g}")
    return float(diff.max())


def make_fixture(spec: Spec, out_dir: Path) -> dict:
    seed = stable_seed(spec.name)
    seed_all(seed)
    model = spec.build()
    feeds = make_inputs(spec, seed + 1)
    tensors = [torch.from_numpy(a) for a in feeds]
    model = prepare(model, tensors, seed + 2)

    with torch.no_grad():
        torch_out = model(*tensors)
    torch_outs = list(torch_out) if isinstance(torch_out, (tuple, list)) else [torch_out]

    fdir = out_dir / spec.name
    if fdir.exists():
        shutil.rmtree(fdir)
    fdir.mkdir(parents=True)
    model_path = fdir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(tensors),
            str(model_path),
            dynamo=False,
            opset_version=spec.opset,
            input_names=[n for n, _ in spec.inputs],
            output_names=spec.outputs,
            dynamic_axes=spec.dynamic_axes or None,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=True,
        )
    proto = onnx.load(str(model_path))
    onnx.checker.check_model(proto, full_check=True)

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    ort_outs = sess.run(None, {n: a for (n, _), a in zip(spec.inputs, feeds)})
    if len(ort_outs) != len(torch_outs):
        sys.exit(f"{spec.name}: {len(ort_outs)} ORT outputs vs {len(torch_outs)} torch outputs")
    max_diff = max(
        check_close(spec.name, o, t.numpy()) for o, t in zip(ort_outs, torch_outs)
    )
    # A third, independent implementation: the ONNX reference evaluator.
    ref_outs = ReferenceEvaluator(proto).run(None, {n: a for (n, _), a in zip(spec.inputs, feeds)})
    ref_diff = max(check_close(spec.name + " (onnx.reference)", o, r) for o, r in zip(ort_outs, ref_outs))

    graph_inputs = {vi.name: vi for vi in proto.graph.input}
    inputs_meta = []
    for i, ((name, shape), arr) in enumerate(zip(spec.inputs, feeds)):
        np.save(fdir / f"input_{i}.npy", arr)
        inputs_meta.append(
            {
                "name": name,
                "file": f"input_{i}.npy",
                "shape": list(shape),
                "model_shape": model_dims(graph_inputs[name]),
                "dtype": str(arr.dtype),
            }
        )
    outputs_meta = []
    for i, (vi, arr) in enumerate(zip(proto.graph.output, ort_outs)):
        np.save(fdir / f"output_{i}.npy", arr)
        outputs_meta.append(
            {
                "name": vi.name,
                "file": f"output_{i}.npy",
                "shape": list(arr.shape),
                "model_shape": model_dims(vi),
                "dtype": str(arr.dtype),
            }
        )

    ops = collections.Counter(n.op_type for n in proto.graph.node)
    return {
        "name": spec.name,
        "description": spec.description,
        "opset": spec.opset,
        "exporter": EXPORTER,
        "params": int(sum(p.numel() for p in model.parameters())),
        "model_bytes": model_path.stat().st_size,
        "inputs": inputs_meta,
        "outputs": outputs_meta,
        "tolerance": {"atol": ATOL, "rtol": RTOL},
        "ort_vs_torch_max_abs_diff": max_diff,
        "ort_vs_onnx_reference_max_abs_diff": ref_diff,
        "ops": dict(sorted(ops.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "tests" / "fixtures")
    parser.add_argument("--only", nargs="*", help="regenerate only these fixtures")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # The fused fast path of nn.TransformerEncoderLayer has no ONNX symbolic.
    torch.backends.mha.set_fastpath_enabled(False)

    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    previous = {}
    if args.only and manifest_path.exists():
        previous = {f["name"]: f for f in json.loads(manifest_path.read_text())["fixtures"]}

    entries = []
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            if spec.name in previous:
                entries.append(previous[spec.name])
            continue
        entries.append(make_fixture(spec, args.out))

    manifest = {
        "generator": "scripts/make_fixtures.py",
        "licence": "random-init weights generated by the script (Apache-2.0); "
        "torchvision architectures BSD-3-Clause; no data sets",
        "versions": {
            "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "reference": "onnxruntime CPUExecutionProvider, default session options",
        "tolerance_rule": "elementwise |got - ref| <= atol + rtol * |ref|",
        "fixtures": entries,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    print(f"{'fixture':<22}{'opset':>6}{'params':>10}{'bytes':>11}{'nodes':>7}{'ort-torch':>11}{'ort-onnxref':>13}")
    total = 0
    for e in entries:
        size = sum(p.stat().st_size for p in (args.out / e["name"]).iterdir())
        total += size
        print(
            f"{e['name']:<22}{e['opset']:>6}{e['params']:>10}{e['model_bytes']:>11}"
            f"{sum(e['ops'].values()):>7}{e['ort_vs_torch_max_abs_diff']:>11.2e}"
            f"{e['ort_vs_onnx_reference_max_abs_diff']:>13.2e}"
        )
    print(f"total on disk (models + npy): {total} bytes")


if __name__ == "__main__":
    main()
