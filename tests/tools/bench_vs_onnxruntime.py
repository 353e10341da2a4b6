#!/usr/bin/env python3
"""Lathe's CPU MLP forward, FP32 (unfused and fused) and INT8, next to ONNX Runtime's on the same weights.

`lathe-cli bench mlp` draws the MLP's weights from a seed and saves them (--save); this script builds the
same model as an ONNX graph (Flatten, Gemm, Relu, Gemm, Relu, Gemm) from that file, quantizes it with
onnxruntime.quantization.quantize_dynamic (int8 weights, activations quantized per call, its defaults), and
times both ONNX Runtime sessions with the same thread count, warm-up, repeats, batch sizes and rotating
inputs as Lathe's FP32 run and its int8 W8A8 run (`--quantize int8_dynamic`: per-channel int8 weights,
activations quantized per row at run time). Lathe's FP32 model is timed twice: as built (Linear, then a separate
ReLU layer) and with `--fuse` (each ReLU fused into the GEMM's epilogue before it, as fuse.activation does, and as
ONNX Runtime's graph optimizer fuses Gemm + Relu), and so is its INT8 model (each qlinear's epilogue then
applies the ReLU as it dequantizes). Lathe and
ONNX Runtime are measured in alternating rounds; each figure is the median over rounds of the per-round median
latency.

Run through tests/tools/onnxruntime_env.sh, which makes the virtual environment with onnxruntime and onnx:
  tests/tools/onnxruntime_env.sh tests/tools/bench_vs_onnxruntime.py --threads 1
"""
import argparse
import datetime
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_pytorch import cpu_model, find_cli, time_medians  # noqa: E402


def read_safetensors(path, np):
    """The tensors of a safetensors file as numpy arrays (F32 only: the float MLP Lathe saves)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"bench_vs_onnxruntime: {path}: tensor {name} is {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=np.float32).reshape(info["shape"])
    return out


def mlp_onnx(weights, path, onnx):
    """The zoo MLP (flatten, then Linear/ReLU pairs) as an ONNX graph of Gemm nodes with the given weights."""
    h = onnx.helper
    linears = sorted({k.rsplit(".", 1)[0] for k in weights if k.endswith(".weight")},
                     key=lambda p: int(p.split(".")[1]))
    nodes = [h.make_node("Flatten", ["x"], ["h0"], axis=1)]
    inits = []
    cur = "h0"
    for i, layer in enumerate(linears):
        w, b = weights[layer + ".weight"], weights[layer + ".bias"]
        inits += [onnx.numpy_helper.from_array(w, layer + ".weight"), onnx.numpy_helper.from_array(b, layer + ".bias")]
        out = f"g{i}"
        nodes.append(h.make_node("Gemm", [cur, layer + ".weight", layer + ".bias"], [out], transB=1))
        cur = out
        if i + 1 < len(linears):
            nodes.append(h.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    graph = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 1, 28, 28])],
                         [h.make_tensor_value_info(cur, onnx.TensorProto.FLOAT, ["N", weights[linears[-1] + ".weight"].shape[0]])],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def run_lathe(cli, args, quantize, save=None, fuse=False):
    cmd = [cli, "bench", "mlp", "--device", "cpu", "--json", "--threads", str(args.threads), "--seed", str(args.seed),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--rotate", str(args.rotate),
           "--batch-sizes", ",".join(map(str, args.batch_sizes))]
    if quantize != "none":
        cmd += ["--quantize", quantize]
    if fuse:
        cmd += ["--fuse"]
    if save:
        cmd += ["--save", save]
    doc = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {r["batch_size"]: r["latency_p50_ms"] for r in doc["results"]}, doc, cmd


def run_ort(session, args, np):
    rng = np.random.default_rng(1000)
    return time_medians(lambda x: session.run(None, {"x": x}), args,
                        lambda batch: rng.random((batch, 1, 28, 28), dtype=np.float32) * 2 - 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lathe-cli", help="path to lathe-cli (default: newest build/*/app/lathe-cli)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--rotate", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5, help="alternating Lathe / ONNX Runtime rounds")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 256])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args()

    import numpy as np
    import onnx
    import onnx.numpy_helper  # noqa: F401
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cli = find_cli(args.lathe_cli)
    tmp = tempfile.mkdtemp(prefix="lathe-ort-")
    weights_file = os.path.join(tmp, "mlp.safetensors")
    fp32_path, int8_path = os.path.join(tmp, "mlp.onnx"), os.path.join(tmp, "mlp-int8.onnx")
    run_lathe(cli, args, "none", save=weights_file)
    mlp_onnx(read_safetensors(weights_file, np), fp32_path, onnx)
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)

    def session(path):
        o = ort.SessionOptions()
        o.intra_op_num_threads = args.threads
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    ort_fp32, ort_int8 = session(fp32_path), session(int8_path)
    rounds = {"lathe_fp32": [], "lathe_fp32_fused": [], "lathe_int8": [], "lathe_int8_fused": [], "ort_fp32": [],
              "ort_int8": []}
    commands = {}
    for _ in range(args.rounds):
        m, _, commands["fp32"] = run_lathe(cli, args, "none")
        rounds["lathe_fp32"].append(m)
        rounds["ort_fp32"].append(run_ort(ort_fp32, args, np))
        m, _, commands["fp32_fused"] = run_lathe(cli, args, "none", fuse=True)
        rounds["lathe_fp32_fused"].append(m)
        m, _, commands["int8"] = run_lathe(cli, args, "int8_dynamic")
        rounds["lathe_int8"].append(m)
        m, _, commands["int8_fused"] = run_lathe(cli, args, "int8_dynamic", fuse=True)
        rounds["lathe_int8_fused"].append(m)
        rounds["ort_int8"].append(run_ort(ort_int8, args, np))

    rows = []
    for b in args.batch_sizes:
        med = {k: statistics.median(r[b] for r in v) for k, v in rounds.items()}
        rows.append({"batch_size": b, **{f"{k}_ms": v for k, v in med.items()},
                     "fp32_ratio_vs_ort": med["lathe_fp32"] / med["ort_fp32"],
                     "fp32_fused_ratio_vs_ort": med["lathe_fp32_fused"] / med["ort_fp32"],
                     "fp32_fused_over_unfused_lathe": med["lathe_fp32_fused"] / med["lathe_fp32"],
                     "int8_ratio_vs_ort": med["lathe_int8"] / med["ort_int8"],
                     "int8_fused_ratio_vs_ort": med["lathe_int8_fused"] / med["ort_int8"],
                     "int8_over_fp32_lathe": med["lathe_int8"] / med["lathe_fp32"],
                     "int8_over_fp32_ort": med["ort_int8"] / med["ort_fp32"]})
    env = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
           "threads": args.threads, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
           "load_average": os.getloadavg(), "lathe_commands": {k: " ".join(v) for k, v in commands.items()},
           "rounds": args.rounds, "warmup": args.warmup, "repeats": args.repeats, "rotate": args.rotate}
    if args.json:
        print(json.dumps({"environment": env, "rows": rows}, indent=2))
        return
    print(f"{env['date']}  {env['cpu']}  threads={args.threads}  ONNX Runtime {env['onnxruntime']}  "
          f"load average {env['load_average'][0]:.1f}")
    print(f"warm-up {args.warmup}, {args.repeats} repeats over {args.rotate} input batches, "
          f"median of {args.rounds} alternating rounds; same weights (seed {args.seed})")
    print(f"{'batch':>6} {'Lathe FP32':>11} {'fused':>9} {'ORT FP32':>9} {'ratio':>6} {'fused':>6}   "
          f"{'Lathe INT8':>11} {'fused':>9} {'ORT INT8':>9} {'ratio':>6} {'fused':>6}   {'Lathe INT8/FP32':>16} "
          f"{'ORT INT8/FP32':>14}")
    for r in rows:
        print(f"{r['batch_size']:>6} {r['lathe_fp32_ms']:>11.4f} {r['lathe_fp32_fused_ms']:>9.4f} "
              f"{r['ort_fp32_ms']:>9.4f} {r['fp32_ratio_vs_ort']:>6.2f} {r['fp32_fused_ratio_vs_ort']:>6.2f}"
              f"   {r['lathe_int8_ms']:>11.4f} {r['lathe_int8_fused_ms']:>9.4f} {r['ort_int8_ms']:>9.4f}"
              f" {r['int8_ratio_vs_ort']:>6.2f} {r['int8_fused_ratio_vs_ort']:>6.2f}"
              f"   {r['int8_over_fp32_lathe']:>16.2f} {r['int8_over_fp32_ort']:>14.2f}")
    by_batch = {r["batch_size"]: r for r in rows}
    if 256 in by_batch:
        r = by_batch[256]
        for what, value, bound in (("Lathe INT8 / Lathe FP32", r["int8_over_fp32_lathe"], 0.6),
                                   ("Lathe INT8 / ORT INT8", r["int8_ratio_vs_ort"], 1.0),
                                   ("Lathe INT8 fused / ORT INT8", r["int8_fused_ratio_vs_ort"], 1.0),
                                   ("Lathe FP32 / ORT FP32", r["fp32_ratio_vs_ort"], 1.0),
                                   ("Lathe FP32 fused / ORT FP32", r["fp32_fused_ratio_vs_ort"], 1.0)):
            print(f"target batch 256: {what} <= {bound}: {value:.3f} ({'met' if value <= bound else 'NOT met'})")


if __name__ == "__main__":
    main()
