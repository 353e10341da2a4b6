#!/usr/bin/env python3
"""PyTorch's figures on the GPU that tests/gpu/run.sh measures Lathe on, for tests/gpu/report.py to set side by side.

Measures the device-to-device copy bandwidth, C = A B^T GEMMs (FP32 with and without TF32, FP16, BF16, INT8 via
torch._int_mm), an FP16 GEMV on a 4096 x 4096 weight, the forward of mlp-784-256-128-10 (eager and replayed from
a CUDA graph) and one training epoch on Fashion-MNIST of that MLP and of cnn-2conv. Writes one JSON document.

    python3 tests/tools/gpu_reference.py --out torch.json [--device cuda|cpu] [--quick] [--fashion-mnist DIR]

--device cpu only exists to dry-run the script without a GPU (Debian's /usr/bin/python3, PyTorch 1.13): its
sizes are shrunk further, and its figures say nothing about a GPU. Every part that fails records its error in
the JSON and the script still exits 0; it exits 1 only when torch cannot be imported.
"""
import argparse
import datetime
import gzip
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_pytorch import cpu_model  # noqa: E402

L2_FALLBACK_BYTES = 60 << 20  # H200's L2; used where the device does not report its own


class Plan:
    """The sizes and repeat counts of one run: full on a GPU, halved by --quick, tiny on the CPU."""

    def __init__(self, device, quick):
        gpu = device == "cuda"
        self.copy_bytes = (1 << 30) if gpu else ((16 << 20) if quick else (64 << 20))
        self.gemm_size = (4096 if quick else 8192) if gpu else (256 if quick else 512)
        self.gemm_warmup, self.gemm_repeats = (5, 30) if gpu else (2, 5)
        self.gemv_size = 4096 if gpu or not quick else 1024
        self.small_warmup, self.small_repeats = (50, 200) if gpu else (20, 200)
        self.mlp_batches = [1, 32, 256]
        self.train_limit = 10000 if quick else 60000
        self.train_warmup_steps = 20


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def error_text(e):
    return f"{type(e).__name__}: {e}".strip()


def buffers_for(set_bytes, l2_bytes, most=8):
    """How many input sets to rotate so the timed call does not find its inputs in L2 (4x L2 of distinct data)."""
    return max(1, min(most, math.ceil(4 * l2_bytes / max(1, set_bytes))))


class Clock:
    """Per-call timing: CUDA events around each call on a GPU (the stream idle before it, as Lathe's backend timer
    does), the host clock on a CPU. Returns milliseconds."""

    def __init__(self, torch, device):
        self.torch, self.gpu = torch, device == "cuda"

    def sync(self):
        if self.gpu:
            self.torch.cuda.synchronize()

    def per_call(self, fn, warmup, repeats):
        for i in range(warmup):
            fn(i)
        self.sync()
        out = []
        if self.gpu:
            ev = self.torch.cuda.Event
            for i in range(repeats):
                start, stop = ev(enable_timing=True), ev(enable_timing=True)
                start.record()
                fn(warmup + i)
                stop.record()
                stop.synchronize()
                out.append(start.elapsed_time(stop))
        else:
            for i in range(repeats):
                t0 = time.perf_counter()
                fn(warmup + i)
                out.append((time.perf_counter() - t0) * 1e3)
        return out

    def queued(self, fn, warmup, repeats):
        """Mean ms per call of `repeats` calls issued back to back (launch latency hidden behind the queue)."""
        for i in range(warmup):
            fn(i)
        self.sync()
        if self.gpu:
            start, stop = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(repeats):
                fn(warmup + i)
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / repeats
        t0 = time.perf_counter()
        for i in range(repeats):
            fn(warmup + i)
        return (time.perf_counter() - t0) * 1e3 / repeats

    def host_synced(self, fn, warmup, repeats):
        """Per-call latency as a caller sees it: synchronize, host clock, call, synchronize, host clock. On a GPU
        the same calls are also bracketed by CUDA events; returns (host ms list, event ms list or None)."""
        for i in range(warmup):
            fn(i)
        self.sync()
        host, events = [], []
        ev = self.torch.cuda.Event if self.gpu else None
        for i in range(repeats):
            if self.gpu:
                start, stop = ev(enable_timing=True), ev(enable_timing=True)
                self.torch.cuda.synchronize()
                t0 = time.perf_counter()
                start.record()
                fn(warmup + i)
                stop.record()
                self.torch.cuda.synchronize()
                host.append((time.perf_counter() - t0) * 1e3)
                events.append(start.elapsed_time(stop))
            else:
                t0 = time.perf_counter()
                fn(warmup + i)
                host.append((time.perf_counter() - t0) * 1e3)
        return host, (events if self.gpu else None)


# ---------------------------------------------------------------- device facts

def nvidia_smi_driver():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        lines = [l.strip() for l in out.stdout.splitlines() if l.strip()]
        return lines[0] if out.returncode == 0 and lines else None
    except (OSError, subprocess.SubprocessError):
        return None


def device_facts(torch, device, quick):
    d = {"kind": device, "torch": torch.__version__, "cuda": torch.version.cuda, "quick": quick,
         "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
         "python": platform.python_version(), "host": platform.node()}
    try:
        import numpy
        d["numpy"] = numpy.__version__
    except ImportError:
        d["numpy"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        d.update({"name": p.name, "sm_count": p.multi_processor_count, "capability": f"{p.major}.{p.minor}",
                  "memory_bytes": p.total_memory, "l2_bytes": getattr(p, "L2_cache_size", None),
                  "driver": nvidia_smi_driver(), "cudnn": torch.backends.cudnn.version(),
                  # PyTorch's defaults, under which the MLP forward and the training epochs run.
                  "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                  "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                  "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)})
    else:
        d.update({"name": cpu_model(), "threads": torch.get_num_threads(), "sm_count": None, "driver": None})
    return d


# ---------------------------------------------------------------- copy, GEMM, GEMV

def bench_copy(torch, dev, clock, plan):
    n = plan.copy_bytes // 4
    src = torch.rand(n, device=dev)
    dst = torch.empty_like(src)
    ms = median(clock.per_call(lambda i: dst.copy_(src), 3, 30))
    moved = 2 * plan.copy_bytes  # read + written
    return {"bytes": plan.copy_bytes, "bytes_counted": moved, "median_ms": ms, "gbps": moved / (ms * 1e-3) / 1e9,
            "counted": "bytes read + bytes written", "repeats": 30}


def set_tf32(torch, allow):
    """FP32 matmuls on tensor cores (TF32) or in IEEE FP32; returns the setting's spelling for the record."""
    m = torch.backends.cuda.matmul
    try:
        m.allow_tf32 = allow
        return "torch.backends.cuda.matmul.allow_tf32"
    except (RuntimeError, AttributeError):  # a torch that only accepts the newer spelling
        m.fp32_precision = "tf32" if allow else "ieee"
        return "torch.backends.cuda.matmul.fp32_precision"


def bench_gemm(torch, dev, clock, plan, l2, dtype_name, tf32):
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    n = plan.gemm_size
    row = {"dtype": dtype_name, "m": n, "n": n, "k": n, "tf32": tf32}
    try:
        if dtype_name == "f32" and dev == "cuda":
            row["tf32_setting"] = set_tf32(torch, tf32)
        elem = torch.tensor([], dtype=dtype).element_size()
        sets = buffers_for(2 * n * n * elem, l2)
        a = [torch.randn(n, n, device=dev).to(dtype) for _ in range(sets)]  # (M, K)
        b = [torch.randn(n, n, device=dev).to(dtype) for _ in range(sets)]  # (N, K)
        c = torch.empty(n, n, device=dev, dtype=dtype)  # (M, N)
        ms = median(clock.per_call(lambda i: torch.mm(a[i % sets], b[i % sets].t(), out=c),
                                   plan.gemm_warmup, plan.gemm_repeats))
        row.update({"median_ms": ms, "tflops": 2.0 * n ** 3 / (ms * 1e-3) / 1e12, "input_buffers": sets,
                    "repeats": plan.gemm_repeats})
    except Exception as e:  # noqa: BLE001 -- recorded, the other parts still run
        row["error"] = error_text(e)
    finally:
        if dtype_name == "f32" and dev == "cuda":
            set_tf32(torch, False)  # PyTorch's default, and what Lathe's FP32 GEMM does
    return row


def bench_int8_mm(torch, dev, clock, plan, l2):
    n = plan.gemm_size
    row = {"m": n, "n": n, "k": n, "op": "torch._int_mm (int8 x int8 -> int32)"}
    if not hasattr(torch, "_int_mm"):
        row.update({"supported": False, "error": f"unsupported: torch {torch.__version__} has no torch._int_mm"})
        return row
    try:
        sets = buffers_for(2 * n * n, l2)
        a = [torch.randint(-128, 128, (n, n), device=dev, dtype=torch.int8) for _ in range(sets)]  # (M, K)
        b = [torch.randint(-128, 128, (n, n), device=dev, dtype=torch.int8) for _ in range(sets)]  # (N, K)
        out = torch.empty(n, n, device=dev, dtype=torch.int32)
        try:
            torch._int_mm(a[0], b[0].t(), out=out)
            call = lambda i: torch._int_mm(a[i % sets], b[i % sets].t(), out=out)  # noqa: E731
        except (TypeError, RuntimeError):
            call = lambda i: torch._int_mm(a[i % sets], b[i % sets].t())  # noqa: E731
        ms = median(clock.per_call(call, plan.gemm_warmup, plan.gemm_repeats))
        row.update({"supported": True, "median_ms": ms, "tops": 2.0 * n ** 3 / (ms * 1e-3) / 1e12,
                    "input_buffers": sets, "repeats": plan.gemm_repeats})
    except Exception as e:  # noqa: BLE001
        row.update({"supported": False, "error": error_text(e)})
    return row


def bench_gemv_f16(torch, dev, clock, plan, l2):
    """y = x W^T at batch 1 in FP16: the bytes a weight-only GEMV would stream, as a context figure. The weight
    rotates over enough copies that it cannot stay in L2 (one 4096 x 4096 FP16 weight is 32 MiB)."""
    n = plan.gemv_size
    row = {"m": 1, "n": n, "k": n, "dtype": "f16"}
    try:
        dtype = torch.float16 if dev == "cuda" else torch.float32
        row["dtype"] = "f16" if dev == "cuda" else "f32 (the CPU dry run)"
        elem = torch.tensor([], dtype=dtype).element_size()
        sets = buffers_for(n * n * elem, l2)
        w = [torch.randn(n, n, device=dev).to(dtype) for _ in range(sets)]  # (N, K)
        x = [torch.randn(1, n, device=dev).to(dtype) for _ in range(sets)]  # (1, K)
        y = torch.empty(1, n, device=dev, dtype=dtype)  # (1, N)
        call = lambda i: torch.mm(x[i % sets], w[i % sets].t(), out=y)  # noqa: E731
        ms = median(clock.per_call(call, plan.small_warmup, plan.small_repeats))
        queued_ms = clock.queued(call, plan.small_warmup, plan.small_repeats)
        moved = elem * (n * n + n + n)  # weight + x + y
        row.update({"bytes": moved, "median_ms": ms, "gbps": moved / (ms * 1e-3) / 1e9, "queued_ms": queued_ms,
                    "queued_gbps": moved / (queued_ms * 1e-3) / 1e9, "weight_buffers": sets,
                    "repeats": plan.small_repeats})
    except Exception as e:  # noqa: BLE001
        row["error"] = error_text(e)
    return row


# ---------------------------------------------------------------- models

def make_mlp(torch):
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def make_cnn(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


def bench_mlp_forward(torch, dev, clock, plan, l2):
    """Per-call latency of the MLP's forward: synchronize, host clock, forward, synchronize (as a caller sees
    it), eager and (on a GPU) replayed from a CUDA graph whose static input is refilled inside the timed call."""
    torch.manual_seed(42)
    model = make_mlp(torch).to(dev).eval()
    rows = []
    for batch in plan.mlp_batches:
        sets = buffers_for(batch * 784 * 4, l2)
        xs = [torch.rand(batch, 1, 28, 28, device=dev) * 2 - 1 for _ in range(sets)]  # (B, 1, 28, 28)
        row = {"batch": batch, "mode": "eager", "input_buffers": sets, "repeats": plan.small_repeats}
        try:
            with torch.inference_mode():
                host, events = clock.host_synced(lambda i: model(xs[i % sets]), plan.small_warmup,
                                                 plan.small_repeats)
            row.update({"median_ms": median(host), "events_median_ms": median(events) if events else None})
        except Exception as e:  # noqa: BLE001
            row["error"] = error_text(e)
        rows.append(row)
        if dev != "cuda":
            continue
        row = {"batch": batch, "mode": "cuda_graph", "input_buffers": sets, "repeats": plan.small_repeats}
        try:
            static_x = xs[0].clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.no_grad(), torch.cuda.stream(side):
                for _ in range(3):
                    model(static_x)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph):
                static_y = model(static_x)  # noqa: F841 -- the graph's output buffer

            def replay(i):
                static_x.copy_(xs[i % sets])
                graph.replay()

            host, events = clock.host_synced(replay, plan.small_warmup, plan.small_repeats)
            row.update({"median_ms": median(host), "events_median_ms": median(events)})
        except Exception as e:  # noqa: BLE001
            row["error"] = error_text(e)
        rows.append(row)
    return rows


def read_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(torch, dev, root):
    images = read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, "train-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype("float32") / 255.0).reshape(-1, 1, 28, 28).to(dev)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype("int64")).to(dev)  # (N,)
    return x, y


def train_steps(torch, model, opt, x, y, order, batch, steps=None):
    """Adam steps over x[order] in batches; returns (steps taken, mean loss, last loss) without a host sync per
    step (the losses are summed on the device)."""
    loss_fn = torch.nn.functional.cross_entropy
    total = torch.zeros((), device=x.device)
    last = None
    taken = 0
    for start in range(0, order.numel(), batch):
        if steps is not None and taken >= steps:
            break
        idx = order[start:start + batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        last = loss.detach()
        total += last
        taken += 1
    return taken, total, last


def bench_train(torch, dev, clock, plan, root, batch=128, lr=1e-3, seed=42):
    names = [("mlp-784-256-128-10", make_mlp), ("cnn-2conv", make_cnn)]
    if not (os.path.exists(os.path.join(root, "train-images-idx3-ubyte.gz"))
            and os.path.exists(os.path.join(root, "train-labels-idx1-ubyte.gz"))):
        return [{"model": name, "batch": batch, "error": f"skipped: no dataset at {root}"} for name, _ in names]
    try:
        x, y = load_fashion_mnist(torch, dev, root)
    except Exception as e:  # noqa: BLE001
        return [{"model": name, "batch": batch, "error": f"dataset: {error_text(e)}"} for name, _ in names]
    images = min(plan.train_limit, x.shape[0])
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(x.shape[0], generator=g)[:images].to(dev)  # the epoch's seeded shuffle
    rows = []
    for name, make in names:
        row = {"model": name, "batch": batch, "images": images, "optimizer": "adam", "lr": lr,
               "warmup_steps": plan.train_warmup_steps}
        try:
            # The warm-up trains a throwaway copy (kernel selection, allocator caches); the timed epoch starts
            # from the seed's weights.
            torch.manual_seed(seed + 1)
            warm = make(torch).to(dev).train()
            train_steps(torch, warm, torch.optim.Adam(warm.parameters(), lr=lr), x, y, order, batch,
                        steps=plan.train_warmup_steps)
            del warm
            torch.manual_seed(seed)
            model = make(torch).to(dev).train()
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            clock.sync()
            t0 = time.perf_counter()
            steps, total, last = train_steps(torch, model, opt, x, y, order, batch)
            clock.sync()
            seconds = time.perf_counter() - t0
            row.update({"seconds": seconds, "steps": steps, "loss": float(total) / steps,
                        "last_loss": float(last)})
        except Exception as e:  # noqa: BLE001
            row["error"] = error_text(e)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- driver

def guarded(torch, doc, key, fn):
    """doc[key] = fn(), or {"error": ...} when it raises; its seconds go to doc["part_seconds"]."""
    t0 = time.perf_counter()
    try:
        doc[key] = fn()
    except Exception as e:  # noqa: BLE001
        doc[key] = {"error": error_text(e), "traceback": traceback.format_exc(limit=3)}
    doc["part_seconds"][key] = round(time.perf_counter() - t0, 2)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the next part starts with the memory this one cached


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def as_list(v):
    return v if isinstance(v, list) else []


def as_dict(v):
    return v if isinstance(v, dict) else {}


def print_table(doc):
    d = doc["device"]
    print(f"PyTorch {d.get('torch')} (CUDA {d.get('cuda')}) on {d.get('name')}, driver {d.get('driver')}, "
          f"{d.get('date_utc')}{' (quick)' if d.get('quick') else ''}")
    c = as_dict(doc.get("copy"))
    print(f"copy       {fmt(c.get('bytes', 0) / 2**20, '.0f')} MiB: {fmt(c.get('gbps'), '.1f')} GB/s "
          f"(read + write){'  ' + c['error'] if 'error' in c else ''}")
    for g in as_list(doc.get("gemm")):
        label = f"{g['dtype']}{' tf32' if g.get('tf32') else ''}"
        print(f"gemm       {label:<9} {g['m']}^3: {fmt(g.get('median_ms'), '.3f')} ms "
              f"{fmt(g.get('tflops'), '.1f')} TFLOP/s{'  ' + g['error'] if 'error' in g else ''}")
    i8 = as_dict(doc.get("int8_mm"))
    print(f"int8 mm    {i8.get('m')}^3: {fmt(i8.get('median_ms'), '.3f')} ms {fmt(i8.get('tops'), '.1f')} TOPS"
          f"{'  ' + i8['error'] if 'error' in i8 else ''}")
    v = as_dict(doc.get("gemv_f16"))
    print(f"gemv       1x{v.get('n')}x{v.get('k')} {v.get('dtype')}: {fmt(v.get('median_ms'), '.4f')} ms "
          f"{fmt(v.get('gbps'), '.1f')} GB/s (queued {fmt(v.get('queued_gbps'), '.1f')} GB/s)"
          f"{'  ' + v['error'] if 'error' in v else ''}")
    for r in as_list(doc.get("mlp_forward")):
        print(f"mlp fwd    batch {r['batch']:<4} {r['mode']:<10}: {fmt(r.get('median_ms'), '.4f')} ms"
              f"{'  ' + r['error'] if 'error' in r else ''}")
    for r in as_list(doc.get("train_epoch")):
        print(f"train      {r['model']:<19} {r.get('images', '-')} images: {fmt(r.get('seconds'), '.2f')} s, "
              f"{r.get('steps', '-')} steps, loss {fmt(r.get('loss'), '.4f')}"
              f"{'  ' + r['error'] if 'error' in r else ''}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help="smaller GEMMs and copy, a 10,000-image epoch")
    p.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist",
                   help="folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz")
    args = p.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"gpu_reference: cannot import torch: {e}", file=sys.stderr)
        return 1

    dev = args.device
    doc = {"device": {"kind": dev}, "part_seconds": {}}
    if dev == "cuda" and not torch.cuda.is_available():
        doc["device"] = {"kind": dev, "torch": torch.__version__, "cuda": torch.version.cuda,
                         "error": "torch.cuda.is_available() is False"}
        for key in ("copy", "int8_mm", "gemv_f16"):
            doc[key] = {"error": "no CUDA device"}
        for key in ("gemm", "mlp_forward", "train_epoch"):
            doc[key] = []
    else:
        plan = Plan(dev, args.quick)
        torch.manual_seed(0)
        clock = Clock(torch, dev)
        guarded(torch, doc, "device", lambda: device_facts(torch, dev, args.quick))
        doc["device"]["kind"] = dev
        l2 = doc["device"].get("l2_bytes") or L2_FALLBACK_BYTES
        guarded(torch, doc, "copy", lambda: bench_copy(torch, dev, clock, plan))
        # TF32 only changes anything on a GPU's tensor cores.
        variants = [("f32", False)] + ([("f32", True)] if dev == "cuda" else []) + [("f16", False), ("bf16", False)]
        guarded(torch, doc, "gemm", lambda: [bench_gemm(torch, dev, clock, plan, l2, dt, tf32)
                                             for dt, tf32 in variants])
        guarded(torch, doc, "int8_mm", lambda: bench_int8_mm(torch, dev, clock, plan, l2))
        guarded(torch, doc, "gemv_f16", lambda: bench_gemv_f16(torch, dev, clock, plan, l2))
        guarded(torch, doc, "mlp_forward", lambda: bench_mlp_forward(torch, dev, clock, plan, l2))
        guarded(torch, doc, "train_epoch", lambda: bench_train(torch, dev, clock, plan, args.fashion_mnist))
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
