#!/usr/bin/env python3
"""Cross-check of `whittle prune --criterion obd` in PyTorch (needs torch; not run in CI).

Usage: whittle prune tests/models/fashion_cnn.onnx -o obd80.onnx --sparsity 0.8 --criterion obd \
         --calib /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --calib-samples 256
       python3 scripts/prune_obd_torch_check.py obd80.onnx
Recomputes the empirical Fisher with torch autograd (per-sample gradients of the first 256
training images), prunes 80% per layer by OBD saliency and by magnitude, prints top-1 on the
first 2000 test images and the agreement of the OBD masks with whittle's.
"""
# Independent OBD (empirical Fisher) on the Fashion CNN in torch, compared with whittle's masks.
import gzip, sys, numpy as np, onnx, torch, torch.nn.functional as F
from onnx import numpy_helper
torch.set_num_threads(1)
m = onnx.load("tests/models/fashion_cnn.onnx")
W = {t.name: torch.tensor(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
def idx(path, off):
    with gzip.open(path) as f: return np.frombuffer(f.read(), np.uint8, offset=off)
D = "/usr/share/datasets/fashion-mnist/"
xtr = idx(D + "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:256].astype(np.float32) / 255
ytr = idx(D + "train-labels-idx1-ubyte.gz", 8)[:256].astype(np.int64)
xte = idx(D + "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:2000].astype(np.float32) / 255
yte = idx(D + "t10k-labels-idx1-ubyte.gz", 8)[:2000].astype(np.int64)
def fwd(p, x):
    for i in (0, 2, 4):
        x = F.conv2d(x, p[f"features.{i}.0.weight"], padding=1)
        x = F.batch_norm(x, W[f"features.{i}.1.running_mean"], W[f"features.{i}.1.running_var"], W[f"features.{i}.1.weight"], W[f"features.{i}.1.bias"], False, 0.0, 1e-5)
        x = F.max_pool2d(F.relu(x), 2)
    return F.linear(x.flatten(1), p["classifier.weight"], W["classifier.bias"])
names = ["features.2.0.weight", "features.4.0.weight", "classifier.weight"]
p = {k: W[k].clone().requires_grad_(k in names) for k in ["features.0.0.weight"] + names}
fish = {k: torch.zeros_like(W[k], dtype=torch.float64) for k in names}
for i in range(256):
    loss = F.cross_entropy(fwd(p, torch.tensor(xtr[i:i+1])), torch.tensor(ytr[i:i+1]))
    g = torch.autograd.grad(loss, [p[k] for k in names])
    for k, gk in zip(names, g): fish[k] += gk.double() ** 2
def acc(q):
    with torch.no_grad(): return (fwd(q, torch.tensor(xte)).argmax(1).numpy() == yte).mean()
for crit in ["obd", "magnitude"]:
    q = {k: v.detach().clone() for k, v in p.items()}
    for k in names:
        s = (0.5 * fish[k] / 256 * W[k].double() ** 2) if crit == "obd" else W[k].abs().double()
        n = round(0.8 * s.numel())
        order = torch.argsort(s.flatten(), stable=True)
        flat = q[k].flatten(); flat[order[:n]] = 0; q[k] = flat.reshape(W[k].shape)
    print(crit, "torch top-1 @80% layer:", acc(q))
    if crit == "obd" and len(sys.argv) > 1:
        wm = onnx.load(sys.argv[1]); got = {}
        for sp in wm.graph.sparse_initializer:
            d = np.zeros(int(np.prod(sp.dims)), np.float32); d[numpy_helper.to_array(sp.indices)] = numpy_helper.to_array(sp.values); got[sp.values.name] = d
        for k in names:
            mine = (q[k].flatten().numpy() == 0); theirs = got[k] == 0
            print(k, "mask agreement", (mine == theirs).mean())
