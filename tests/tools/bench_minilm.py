#!/usr/bin/env python3
"""Sentences/s of all-MiniLM-L6-v2 in Lathe (`lathe-cli bench encoder`) and in the PyTorch reference of
minilm_reference.py, timed in the same command on the same sentences (lines of the fortunes package, padded to
128 tokens by the model's tokenizer.json), the same thread count, forward only (tokenization outside the timing).
Run through the tokenizers venv:

  tests/tools/tokenizers_env.sh tests/tools/bench_minilm.py --cli build/default/app/lathe-cli --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minilm_reference as ref  # noqa: E402


def fortune_lines(n):
    d = "/usr/share/games/fortunes"
    out = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if name.endswith(".dat") or os.path.islink(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and line != "%" and len(line.split()) >= 4:
                    out.append(line)
    return out[::max(1, len(out) // n)][:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default="build/default/app/lathe-cli")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0, help="PyTorch: timing per batch size")
    ap.add_argument("--model", default=ref.default_model_dir())
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    sentences = fortune_lines(256)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(sentences) + "\n")
        path = f.name
    try:
        out = subprocess.run([args.cli, "bench", "encoder", "--model", "minilm-l6-v2", "--sentences", path,
                              "--device", "cpu", "--threads", str(args.threads), "--batch-sizes",
                              ",".join(map(str, args.batch)), "--warmup", "2", "--repeats", str(args.repeats),
                              "--rotate", "2", "--json"], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    lathe = {r["batch_size"]: r for r in json.loads(out)["results"]}
    model, tok = ref.MiniLM(args.model), ref.load_tokenizer(args.model)
    torch_rows = {r["batch_size"]: r for r in ref.bench(model, tok, sentences, args.batch, args.seconds)}
    print("| batch | Lathe median ms | Lathe sentences/s | PyTorch median ms | PyTorch sentences/s | Lathe / PyTorch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in args.batch:
        l, t = lathe[b], torch_rows[b]
        print("| %d | %.2f | %.1f | %.2f | %.1f | %.2f |" % (b, l["latency_p50_ms"], l["sentences_per_s"],
                                                        t["latency_p50_ms"], t["sentences_per_s"],
                                                        l["sentences_per_s"] / t["sentences_per_s"]))
    print(json.dumps({"threads": args.threads, "lathe": list(lathe.values()), "pytorch": list(torch_rows.values())}))


if __name__ == "__main__":
    main()
