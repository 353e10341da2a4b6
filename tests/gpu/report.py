#!/usr/bin/env python3
"""The markdown report of one GPU run: Lathe's figures from a tests/gpu/run.sh output folder beside PyTorch's
(tests/tools/gpu_reference.py's torch.json), the performance targets with their verdicts, and every figure with
its fraction of a measured ceiling.

    python3 tests/gpu/report.py --results DIR [--markdown docs/benchmarks/gpu.md] [--write-dir DIR2]

Reads from DIR (each file may be missing; a figure that is not there reads "not measured", nothing is
estimated): torch.json, machine.txt, summary.txt, bench-gemm-{f32,f16,bf16}.json (and any other
bench-gemm-*.json), bench-int8.json, bench-weight-only.json, bench-mlp.json, train-mlp.json, train-cnn.json.
Writes report.md and report.json to --write-dir (default DIR) and prints the markdown. With --markdown, replaces
the part of that file between the gpu-run markers (creating the file, or appending the markers, as needed), so
the hand-written text around them stays.
"""
import argparse
import json
import os
import sys

from gpu_results import NOT_MEASURED, Results, all_figures, machine_facts, num
from gpu_targets import all_targets

BEGIN, END = "<!-- gpu-run:begin -->", "<!-- gpu-run:end -->"

DOC_HEADER = """# GPU benchmarks (CUDA backend)

The section between the `gpu-run` markers below is written by `tests/gpu/report.py` from the output folder of
one `tests/gpu/run.sh` run (Lathe's figures and PyTorch's, `tests/tools/gpu_reference.py`, on the same GPU in
the same command); rerunning it replaces that section only. Write analysis outside the markers.
"""

# ---------------------------------------------------------------- markdown

def cell(v):
    return "—" if v is None or v == "" else str(v).replace("|", "\\|")


def ms_text(v):
    return f"{v:.4g}" if num(v) else "—"


def section(res, m, targets, figures):
    kind = m["torch_device_kind"]
    lines = ["## Latest GPU run", "",
             "Written by `tests/gpu/report.py` from one `tests/gpu/run.sh` output folder; a figure missing there "
             "reads \"not measured\".", ""]
    if res.torch is None:
        lines += ["**No PyTorch reference (torch.json) in this run**: the ratios against PyTorch are not measured.", ""]
    if kind and kind != "cuda":
        lines += [f"**Not a GPU run**: PyTorch ran on `{kind}` ({m['torch_device']}). These figures are a dry run "
                  "of the scripts, not GPU figures.", ""]
    gpu = m["torch_device"] or m["smi_gpu"] or NOT_MEASURED
    extra = ", ".join(x for x in (f"{m['sm_count']} SMs" if m["sm_count"] else "",
                                  f"compute capability {m['capability']}" if m["capability"] else "") if x)
    commit = m["commit"] or "?"
    if m["run_commit"] and m["run_commit"] != m["commit"]:
        commit = f"{m['run_commit']} (measured; summary.txt), report written at {m['commit'] or '?'}"
    cuda = "; ".join(x for x in (f"driver supports {m['smi_cuda']}" if m["smi_cuda"] else "",
                                 f"nvcc {m['nvcc']}" if m["nvcc"] else "",
                                 f"PyTorch built with {m['torch_cuda']}" if m["torch_cuda"] else "") if x)
    lines += ["| | |", "|---|---|",
              f"| device (PyTorch) | {cell(gpu)}{' (' + extra + ')' if extra else ''} |",
              f"| device (Lathe) | {cell('; '.join(m['lathe_devices']) or NOT_MEASURED)} |",
              f"| driver | {cell(m['driver'] or NOT_MEASURED)} |",
              f"| CUDA | {cell(cuda or NOT_MEASURED)} |",
              f"| PyTorch | {cell(m['torch'] or NOT_MEASURED)}{' (gpu_reference.py --quick)' if m['quick'] else ''} |",
              f"| date | {cell(m['date'])} |",
              f"| commit | {cell(commit)} |", ""]
    lines += ["### Targets", "",
              "| # | target | Lathe | PyTorch | ratio | threshold | verdict |",
              "|---|--------|-------|---------|-------|-----------|---------|"]
    for t in targets:
        v = t.verdict()
        lines.append(f"| {t.ident} | {cell(t.name)} | {cell(t.lathe)} | {cell(t.torch)} | "
                     f"{f'{t.ratio:.3f}' if t.ratio is not None else '—'} | {t.op} {t.threshold} | "
                     f"{'**' + v + '**' if v != NOT_MEASURED else v}{' — ' + cell(t.note) if t.note else ''} |")
    lines += ["", "### Every measured figure", "",
              "Roofline fraction: a GEMM's FLOP/s over PyTorch's fastest GEMM of the same type on this device; a "
              "batch-1 GEMV's bytes/s over the measured device-to-device copy bandwidth (bytes read + written).", "",
              "| source | bench | type | shape | median ms | throughput | roofline fraction | ceiling | note |",
              "|--------|-------|------|-------|-----------|------------|-------------------|---------|------|"]
    for x in figures:
        fraction = f"{x['roofline_fraction']:.3g}" if x["roofline_fraction"] is not None else "—"
        lines.append(f"| {cell(x['source'])} | {cell(x['bench'])} | {cell(x['type'])} | {cell(x['shape'])} | "
                     f"{ms_text(x['median_ms'])} | {cell(x['throughput'])} | {fraction} | "
                     f"{cell(x['ceiling'])} | {cell(x['note'])} |")
    if not figures:
        lines.append("| " + " | ".join([NOT_MEASURED] + ["—"] * 8) + " |")
    lines += ["", "### How the figures were taken", "",
              "- Lathe: `lathe-cli bench ... --json` and `lathe-cli train ... --json` as `tests/gpu/run.sh` runs "
              "them; medians over repeats after a warm-up, each call bracketed by the backend's timer.",
              "- PyTorch: `tests/tools/gpu_reference.py`. GEMMs and the GEMV: CUDA events around each call, median, "
              "inputs rotated over enough buffers to exceed L2. MLP forward: CUDA events around each forward, "
              "as Lathe's timer brackets its own (the target's figure), and beside it the host clock from a "
              "synchronize before to a synchronize after; median of 200 after a warm-up; the CUDA graph "
              "call includes copying the input into the graph's static buffer. Training: 20 untimed warm-up steps "
              "on a throwaway model, then one epoch (seeded shuffle, batch 128, Adam 1e-3) from the seed's "
              "weights, synchronized at the end; data preloaded on the device.",
              "- Weight-only bytes: codes + scales (+ zero points) as the bench counts them (`weight_bytes`), plus "
              "the f32 input and output.", ""]
    if res.problems:
        lines += ["Files that could not be read: " + "; ".join(res.problems), ""]
    return "\n".join(lines).rstrip() + "\n"


def update_living_doc(path, body):
    """Replace what lies between the markers (create the file, or append the markers, when missing)."""
    block = f"{BEGIN}\n{body}{END}\n"
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = DOC_HEADER
    b, e = text.find(BEGIN), text.find(END)
    if b != -1 and e > b:
        text = text[:b] + block + text[e + len(END):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, help="the run.sh output folder")
    p.add_argument("--markdown", help="living document whose gpu-run section to replace (e.g. docs/benchmarks/gpu.md)")
    p.add_argument("--write-dir", help="where report.md and report.json go (default: --results)")
    args = p.parse_args()
    if not os.path.isdir(args.results):
        print(f"report.py: {args.results}: not a folder", file=sys.stderr)
        return 2
    res = Results(args.results)
    m = machine_facts(res)
    kind = m["torch_device_kind"] or "cuda"
    targets = all_targets(res, kind)
    figures = all_figures(res, kind)
    body = section(res, m, targets, figures)
    out_dir = args.write_dir or args.results
    try:
        with open(os.path.join(out_dir, "report.md"), "w") as f:
            f.write(body)
        with open(os.path.join(out_dir, "report.json"), "w") as f:
            json.dump({"machine": m, "targets": [t.as_dict() for t in targets], "figures": figures}, f, indent=2)
            f.write("\n")
    except OSError as e:
        print(f"report.py: could not write report.md/report.json to {out_dir}: {e}", file=sys.stderr)
    if args.markdown:
        update_living_doc(args.markdown, body)
    print(body, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
