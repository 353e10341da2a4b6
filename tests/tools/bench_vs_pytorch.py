#!/usr/bin/python3
"""Lathe's CPU MLP forward next to PyTorch's on the same machine, in the same command.

Runs `lathe-cli bench mlp --device cpu --json` and the same model (mlp-784-256-128-10: Flatten,
Linear 784->256, ReLU, Linear 256->128, ReLU, Linear 128->10) in PyTorch with the same thread
count, warm-up, repeats, batch sizes and number of rotating input batches, and prints the ratios.
PyTorch gets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to the same count too, so neither side
uses more cores than the other. The two are measured in alternating rounds so machine load drifts hit both alike; each figure is
the median over rounds of the per-round median latency.

Run with Debian's PyTorch: /usr/bin/python3 tests/tools/bench_vs_pytorch.py [--lathe-cli PATH]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def find_cli(explicit):
    if explicit:
        return explicit
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = sorted(glob.glob(os.path.join(root, "build", "*", "app", "lathe-cli")), key=os.path.getmtime)
    if not found:
        sys.exit("bench_vs_pytorch: no lathe-cli under build/*/app/; build it or pass --lathe-cli PATH")
    return found[-1]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_lathe(cli, args):
    cmd = [cli, "bench", "mlp", "--device", "cpu", "--json", "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--rotate", str(args.rotate),
           "--batch-sizes", ",".join(map(str, args.batch_sizes))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    return {r["batch_size"]: r["latency_p50_ms"] for r in doc["results"]}, doc, cmd


def build_torch_model(torch):
    nn = torch.nn
    torch.manual_seed(42)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10)).eval()


def time_medians(forward, args, make_input):
    """Median latency in ms of forward(x) per batch size: args.warmup untimed calls, then args.repeats timed
    ones, cycling through args.rotate inputs made by make_input(batch)."""
    medians = {}
    for batch in args.batch_sizes:
        inputs = [make_input(batch) for _ in range(args.rotate)]
        for i in range(args.warmup):
            forward(inputs[i % args.rotate])
        samples = []
        for i in range(args.repeats):
            x = inputs[(args.warmup + i) % args.rotate]
            t0 = time.perf_counter_ns()
            forward(x)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        medians[batch] = statistics.median(samples)
    return medians


def run_torch(torch, model, args):
    with torch.inference_mode():
        return time_medians(model, args, lambda batch: torch.rand(batch, 1, 28, 28) * 2 - 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lathe-cli", help="path to lathe-cli (default: newest build/*/app/lathe-cli)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--rotate", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5, help="alternating Lathe/PyTorch rounds")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 64, 256])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args()

    # Debian's PyTorch calls the system OpenBLAS (pthreads build), whose thread pool
    # torch.set_num_threads does not control: pin it and OpenMP to the same count as Lathe's.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch  # Debian's python3-torch (PyTorch 1.13)
    torch.set_num_threads(args.threads)
    model = build_torch_model(torch)
    cli = find_cli(args.lathe_cli)

    lathe_rounds, torch_rounds = [], []
    lathe_doc, lathe_cmd = None, None
    for _ in range(args.rounds):
        medians, lathe_doc, lathe_cmd = run_lathe(cli, args)
        lathe_rounds.append(medians)
        torch_rounds.append(run_torch(torch, model, args))

    rows = []
    for b in args.batch_sizes:
        lat_l = statistics.median(r[b] for r in lathe_rounds)
        lat_t = statistics.median(r[b] for r in torch_rounds)
        rows.append({"batch_size": b, "lathe_latency_p50_ms": lat_l, "torch_latency_p50_ms": lat_t,
                     "latency_ratio": lat_l / lat_t, "lathe_throughput_per_s": b / (lat_l * 1e-3),
                     "torch_throughput_per_s": b / (lat_t * 1e-3), "throughput_ratio": lat_t / lat_l})
    env = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
           "threads": args.threads, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "load_average": os.getloadavg(), "lathe_cli": cli,
           "lathe_command": " ".join(lathe_cmd), "rounds": args.rounds, "warmup": args.warmup,
           "repeats": args.repeats, "rotate": args.rotate,
           "openblas": lathe_doc["results"][0].get("library", "") if lathe_doc["results"] else ""}
    if args.json:
        print(json.dumps({"environment": env, "rows": rows}, indent=2))
    else:
        print(f"{env['date']}  {env['cpu']}  threads={args.threads}  PyTorch {env['torch']}  {env['openblas']}  "
              f"load average {env['load_average'][0]:.1f}")
        print(f"warm-up {args.warmup}, {args.repeats} repeats over {args.rotate} input batches, "
              f"median of {args.rounds} alternating rounds")
        print(f"{'batch':>6} {'Lathe ms':>10} {'PyTorch ms':>11} {'latency ratio':>14} "
              f"{'Lathe /s':>10} {'PyTorch /s':>11} {'throughput ratio':>17}")
        for r in rows:
            print(f"{r['batch_size']:>6} {r['lathe_latency_p50_ms']:>10.4f} {r['torch_latency_p50_ms']:>11.4f} "
                  f"{r['latency_ratio']:>14.3f} {r['lathe_throughput_per_s']:>10.0f} "
                  f"{r['torch_throughput_per_s']:>11.0f} {r['throughput_ratio']:>17.3f}")
        by_batch = {r["batch_size"]: r for r in rows}
        if 1 in by_batch:
            ok = by_batch[1]["latency_ratio"] <= 0.5
            print(f"target batch 1: latency ratio <= 0.5: {by_batch[1]['latency_ratio']:.3f} "
                  f"({'met' if ok else 'NOT met'})")
        if 256 in by_batch:
            ok = by_batch[256]["throughput_ratio"] >= 1.0
            print(f"target batch 256: throughput ratio >= 1.0: {by_batch[256]['throughput_ratio']:.3f} "
                  f"({'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
