#!/usr/bin/env python3
"""Dynamic int8 quantization of one trained MLP by Lathe, PyTorch and ONNX Runtime, accuracies side by side.

`lathe-cli train` trains mlp-784-256-128-10 on Fashion-MNIST and saves it; the same FP32 weights are then
quantized three ways and evaluated on the 10,000 test images:
  - Lathe: `quantize.int8` with dynamic activations (per-channel int8 weights, per-row activation scales),
    run by `lathe-cli run` on the saved model;
  - PyTorch (Debian's 1.13): torch.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8);
  - ONNX Runtime: onnxruntime.quantization.quantize_dynamic (int8 weights, its defaults).
Each engine's FP32 accuracy is printed beside its int8 one, so the three FP32 figures also check that the
same model was evaluated on the same inputs.

Run through tests/tools/onnxruntime_env.sh (the virtual environment sees Debian's PyTorch):
  tests/tools/onnxruntime_env.sh tests/tools/quant_crosscheck.py [--epochs 3]
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_onnxruntime import mlp_onnx, read_safetensors  # noqa: E402
from bench_vs_pytorch import find_cli  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path, np):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def lathe_accuracy(cli, model_path, quantize, tmp):
    steps = [{"strategy": "quantize.int8", "params": {"activations": "dynamic", "granularity": "per_channel"}}] \
        if quantize else []
    doc = {"name": "crosscheck", "model": {"path": model_path}, "dataset": {"name": "fashion-mnist", "split": "test"},
           "device": "cpu", "steps": steps, "measure": {"batch_sizes": [256], "warmup": 1, "repeats": 3}}
    path = os.path.join(tmp, f"crosscheck-{int(quantize)}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    out = subprocess.run([cli, "run", path, "--db", os.path.join(tmp, "runs.sqlite"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["summary"]["accuracy"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lathe-cli", help="path to lathe-cli (default: newest build/*/app/lathe-cli)")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()

    import warnings

    # Debian's torch was built against numpy 1.x; the tensors here go through raw bytes, never numpy.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import numpy as np
    import onnx
    import onnx.numpy_helper  # noqa: F401
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cli = find_cli(args.lathe_cli)
    tmp = tempfile.mkdtemp(prefix="lathe-crosscheck-")
    model_path = os.path.join(tmp, "mlp.safetensors")
    subprocess.run([cli, "train", "--model", "mlp-784-256-128-10", "--dataset", "fashion-mnist", "--epochs",
                    str(args.epochs), "--device", "cpu", "--save", model_path], check=True, capture_output=True)
    with open(model_path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        arch = json.loads(json.loads(f.read(n))["__metadata__"]["lathe.architecture"])
    pre = arch["input"]
    images = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), np).astype(np.float32)
    labels = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), np).astype(np.int64)
    # Lathe's preprocessing, as the model file declares it: (x * scale - mean) / std, in f32.
    x = ((images * np.float32(pre["scale"]) - np.float32(pre["mean"])) / np.float32(pre["std"]))
    x = x.reshape(-1, 1, 28, 28).astype(np.float32)

    weights = read_safetensors(model_path, np)
    results = {"lathe": (lathe_accuracy(cli, model_path, False, tmp), lathe_accuracy(cli, model_path, True, tmp))}

    # PyTorch: tensors through raw bytes (Debian's torch predates the venv's numpy 2).
    def tensor(a):
        return torch.frombuffer(bytearray(np.ascontiguousarray(a).tobytes()), dtype=torch.float32).reshape(a.shape)

    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10)).eval()
    with torch.no_grad():
        for i in (1, 3, 5):
            model[i].weight.copy_(tensor(weights[f"layers.{i}.weight"]))
            model[i].bias.copy_(tensor(weights[f"layers.{i}.bias"]))
    qmodel = torch.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    xt, yt = tensor(x), torch.tensor(labels.tolist())
    with torch.inference_mode():
        results["pytorch"] = tuple(float((m(xt).argmax(1) == yt).float().mean()) for m in (model, qmodel))

    fp32_path, int8_path = os.path.join(tmp, "mlp.onnx"), os.path.join(tmp, "mlp-int8.onnx")
    mlp_onnx(weights, fp32_path, onnx)
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    accs = []
    for path in (fp32_path, int8_path):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        accs.append(float((s.run(None, {"x": x})[0].argmax(1) == labels).mean()))
    results["onnxruntime"] = tuple(accs)

    print(f"mlp-784-256-128-10, {args.epochs} epochs of Adam (lathe-cli train), Fashion-MNIST test split (10,000)")
    print(f"{'engine':<13} {'FP32':>8} {'INT8 dynamic':>13} {'change (points)':>16}")
    for name, (fp32, int8) in results.items():
        print(f"{name:<13} {fp32:>8.4f} {int8:>13.4f} {100 * (int8 - fp32):>+16.2f}")
    print(f"versions: torch {torch.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
