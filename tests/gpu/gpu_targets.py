"""The performance targets of a GPU run for report.py: each one's Lathe and PyTorch figures, their ratio, the
threshold and the verdict ("met", "not met", or "not measured" when a figure is missing or the two come from
different devices)."""
from gpu_results import (CNN_MODEL, MLP_MODEL, NOT_MEASURED, copy_gbps, gemm_rows, int8_shape, kind_of,
                         lathe_gemm_tflops, lathe_int8_tops, num, prefer_device, rows_of, torch_gemm, torch_part,
                         weight_only_bytes)

GEMM_TARGET = 8192  # the square GEMM size the targets are set at
GEMV_TARGET = 4096  # the weight-only layer (in = out) the target is set at

# ---------------------------------------------------------------- targets

class Target:
    def __init__(self, ident, name, threshold, op):
        self.ident, self.name, self.threshold, self.op = ident, name, threshold, op
        self.lathe = self.torch = NOT_MEASURED
        self.ratio = None
        self.note = ""
        self.comparable = True

    def verdict(self):
        if self.ratio is None or not self.comparable:
            return NOT_MEASURED
        ok = self.ratio <= self.threshold if self.op == "<=" else self.ratio >= self.threshold
        return "met" if ok else "not met"

    def as_dict(self):
        return {"id": self.ident, "target": self.name, "lathe": self.lathe, "torch": self.torch, "ratio": self.ratio,
                "threshold": f"{self.op} {self.threshold}", "verdict": self.verdict(), "note": self.note}


def device_note(t, lathe_kind, torch_kind):
    if lathe_kind and torch_kind and lathe_kind != torch_kind:
        t.comparable = False
        t.note = (t.note + " " if t.note else "") + \
            f"Lathe ran on {lathe_kind}, PyTorch on {torch_kind}: not comparable."


def target_mlp(res, kind):
    t = Target("1", "MLP forward, batch 1: Lathe latency / PyTorch eager latency", 0.5, "<=")
    rows = [r for r in prefer_device(rows_of(res.mlp), kind) if r.get("batch_size") == 1
            and r.get("quantize", "none") == "none" and num(r.get("latency_p50_ms"))]
    tm = {r.get("mode"): r for r in torch_part(res, "mlp_forward", []) if isinstance(r, dict) and r.get("batch") == 1}
    eager, graph = tm.get("eager", {}), tm.get("cuda_graph", {})
    if rows:
        best = min(rows, key=lambda r: r["latency_p50_ms"])
        how = [w for w, on in (("fused", best.get("fused")), ("CUDA graph", best.get("cuda_graph"))) if on]
        config = ", ".join([str(best.get("backend")), *how])
        t.lathe = f"{best['latency_p50_ms'] * 1e3:.1f} µs ({config})"
        if len(rows) > 1:
            t.note = f"fastest of {len(rows)} Lathe configurations."
    # Lathe's latency is device-event timed (measureLatency): compare with PyTorch's event-timed figure of the
    # same forward, and give the host-clock one (sync included) beside it.
    def timed(r):
        return r.get("events_median_ms") if num(r.get("events_median_ms")) else r.get("median_ms")
    if num(timed(eager)):
        t.torch = f"{timed(eager) * 1e3:.1f} µs eager (events; host clock {eager.get('median_ms', float('nan')) * 1e3:.1f} µs)"
        if num(timed(graph)):
            t.torch += f"; CUDA graph {timed(graph) * 1e3:.1f} µs"
    if rows and num(timed(eager)):
        t.ratio = best["latency_p50_ms"] / timed(eager)
        device_note(t, kind_of(best.get("backend")), kind)
    return t


def target_gemm(res, kind, dtype):
    label = {"f16": "FP16", "bf16": "BF16"}.get(dtype, dtype)
    t = Target(f"2 ({dtype})", f"{label} GEMM {GEMM_TARGET}³: Lathe TFLOP/s / PyTorch TFLOP/s", 0.9, ">=")
    lrow = next((r for d, r in gemm_rows(res, kind) if d == dtype
                 and (r.get("m"), r.get("n"), r.get("k")) == (GEMM_TARGET,) * 3), None)
    trow = torch_gemm(res, dtype, size=GEMM_TARGET)
    lt = lathe_gemm_tflops(lrow) if lrow else None
    if lt:
        t.lathe = f"{lt:.1f} TFLOP/s ({lrow.get('backend')})"
    if trow:
        t.torch = f"{trow['tflops']:.1f} TFLOP/s"
    if lt and trow:
        t.ratio = lt / trow["tflops"]
        device_note(t, kind_of(lrow.get("backend")), kind)
    return t


def lathe_int8_at(res, kind, size):
    """Lathe's INT8 GEMM at size³: from bench-int8.json (rows with that shape), else any bench-gemm row of an
    int8 dtype. Returns (tops, row, what was timed, source) or Nones."""
    for r in prefer_device(rows_of(res.int8), kind):
        if int8_shape(r) == (size, size, size):
            tops, what = lathe_int8_tops(r)
            if tops:
                return tops, r, what, "bench-int8.json"
    for dtype, r in gemm_rows(res, kind):
        if dtype in ("i8", "int8", "s8") and (r.get("m"), r.get("n"), r.get("k")) == (size,) * 3:
            tops = num(r.get("achieved_tops")) or lathe_gemm_tflops(r)
            if tops:
                return tops, r, "gemm", "bench-gemm"
    return None, None, None, None


def target_int8(res, kind):
    t = Target("3", f"INT8 GEMM {GEMM_TARGET}³: Lathe INT8 TOPS / Lathe FP16 TFLOP/s", 1.6, ">=")
    tops, irow, what, source = lathe_int8_at(res, kind, GEMM_TARGET)
    frow = next((r for d, r in gemm_rows(res, kind) if d == "f16"
                 and (r.get("m"), r.get("n"), r.get("k")) == (GEMM_TARGET,) * 3), None)
    f16 = lathe_gemm_tflops(frow) if frow else None
    if tops:
        t.lathe = f"{tops:.1f} TOPS ({what}, {source}, {irow.get('backend')})"
    if f16:
        t.lathe += f"; FP16 {f16:.1f} TFLOP/s" if tops else ""
        if not tops:
            t.lathe = f"INT8 {NOT_MEASURED}; FP16 {f16:.1f} TFLOP/s"
    ti8 = torch_part(res, "int8_mm", {})
    tf16 = torch_gemm(res, "f16", size=GEMM_TARGET)
    if num(ti8.get("tops")) and ti8.get("m") == GEMM_TARGET and tf16:
        t.torch = (f"context: _int_mm {ti8['tops']:.1f} TOPS / FP16 {tf16['tflops']:.1f} = "
                   f"{ti8['tops'] / tf16['tflops']:.2f}")
    elif ti8.get("error"):
        t.torch = f"context: {ti8['error']}"
    if tops and f16:
        t.ratio = tops / f16
        if kind_of(irow.get("backend")) != kind_of(frow.get("backend")):
            t.comparable = False
            t.note = "the INT8 and FP16 figures come from different devices."
    return t


def target_weight_only(res, kind):
    out = []
    copy = copy_gbps(res)
    # Square layers of 4096 x 4096 and up at batch 1; per format the largest measured, whose weight is the
    # likeliest to exceed the L2 and so to be read from device memory as deployment would.
    rows = [r for r in prefer_device(rows_of(res.weight_only), kind)
            if r.get("in") == r.get("out") and (r.get("in") or 0) >= GEMV_TARGET and r.get("batch_size") == 1
            and any(f in str(r.get("weights", "")).lower() for f in ("int4", "nf4"))]
    largest = {}
    for r in rows:
        name = r.get("weights")
        if name not in largest or r["in"] > largest[name]["in"]:
            largest[name] = r
    names = list(largest) or ["INT4 / NF4"]
    for name in names:
        r = largest.get(name)
        size = r["in"] if r else GEMV_TARGET
        t = Target(f"4 ({name})", f"{name} weight-only GEMV, batch 1, {size}×{size}: "
                                  f"bytes/s / copy bandwidth", 0.6, ">=")
        ms = num(r.get("weight_only_p50_ms")) if r else None
        moved = weight_only_bytes(r) if r else None
        gbps = moved / (ms * 1e-3) / 1e9 if ms and moved else None
        if gbps:
            t.lathe = f"{gbps:.0f} GB/s ({moved / 2**20:.2f} MiB in {ms * 1e3:.1f} µs, {r.get('backend')})"
        if copy:
            t.torch = f"copy {copy:.0f} GB/s"
        if gbps and copy:
            t.ratio = gbps / copy
            device_note(t, kind_of(r.get("backend")), kind)
            if t.ratio > 1.0:
                t.note = (t.note + " " if t.note else "") + \
                    "Above the copy bandwidth: the weight was likely read from L2 (the bench rotates only x)."
        out.append(t)
    return out


def target_train(res, kind, model):
    short = "MLP" if model == MLP_MODEL else "CNN"
    t = Target(f"5 ({short})", f"one training epoch, {model}: Lathe seconds / PyTorch seconds", 1.0, "<=")
    doc = res.train.get(model)
    lsec = num(doc.get("seconds")) if isinstance(doc, dict) else None
    limgs = (num(doc.get("train_samples")) or num(doc.get("images"))) if isinstance(doc, dict) else None
    trow = next((r for r in torch_part(res, "train_epoch", []) if isinstance(r, dict) and r.get("model") == model),
                None)
    tsec = num(trow.get("seconds")) if trow else None
    timgs = num(trow.get("images")) if trow else None
    if lsec:
        t.lathe = f"{lsec:.2f} s ({limgs or '?'} images, {doc.get('steps', '?')} steps, {doc.get('device', '?')})"
    if tsec:
        t.torch = f"{tsec:.2f} s ({timgs} images, {trow.get('steps')} steps)"
    elif trow and trow.get("error"):
        t.torch = f"{NOT_MEASURED} ({trow['error']})"
    if lsec and tsec:
        if limgs and timgs and limgs != timgs:
            t.ratio = (lsec / limgs) / (tsec / timgs)
            t.note = f"Per image: the two epochs covered {limgs} and {timgs} images."
        else:
            t.ratio = lsec / tsec
        device_note(t, kind_of(doc.get("device")), kind)
    return t


def all_targets(res, kind):
    targets = [target_mlp(res, kind), target_gemm(res, kind, "bf16"), target_gemm(res, kind, "f16"),
               target_int8(res, kind), *target_weight_only(res, kind), target_train(res, kind, MLP_MODEL),
               target_train(res, kind, CNN_MODEL)]
    if kind != "cuda":  # the targets are GPU targets: a dry run elsewhere shows its ratios but judges none
        for t in targets:
            if t.ratio is not None and t.comparable:
                t.comparable = False
                t.note = (t.note + " " if t.note else "") + f"Measured on {kind}, not a GPU."
    return targets
