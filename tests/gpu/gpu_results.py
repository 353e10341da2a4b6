"""Reading one tests/gpu/run.sh output folder for report.py: Lathe's bench and train JSON, PyTorch's torch.json
(tests/tools/gpu_reference.py), machine.txt; the figures drawn from them, each with its fraction of a measured
ceiling. Every reader tolerates a missing file or key: what is not there is "not measured", never estimated."""
import datetime
import glob
import json
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MLP_MODEL, CNN_MODEL = "mlp-784-256-128-10", "cnn-2conv"
NOT_MEASURED = "not measured"

# ---------------------------------------------------------------- reading

class Results:
    """The files of one output folder, each None when missing; `problems` lists the ones that did not parse."""

    def __init__(self, folder):
        self.folder = folder
        self.problems = []
        self.torch = self.json("torch.json")
        self.machine_txt = self.text("machine.txt")
        self.summary_txt = self.text("summary.txt")
        self.gemm = {}  # dtype -> document
        for path in sorted(glob.glob(os.path.join(folder, "bench-gemm-*.json"))):
            doc = self.json(os.path.basename(path))
            if doc is not None:
                self.gemm[os.path.basename(path)[len("bench-gemm-"):-len(".json")]] = doc
        self.int8 = self.json("bench-int8.json")
        self.weight_only = self.json("bench-weight-only.json")
        # bench-mlp.json, bench-mlp-fused.json, bench-mlp-graph.json: one document of all their rows
        mlp_rows = []
        for path in sorted(glob.glob(os.path.join(folder, "bench-mlp*.json"))):
            doc = self.json(os.path.basename(path))
            if isinstance(doc, dict) and isinstance(doc.get("results"), list):
                mlp_rows += doc["results"]
        self.mlp = {"results": mlp_rows} if mlp_rows else None
        self.train = {MLP_MODEL: self.json("train-mlp.json"), CNN_MODEL: self.json("train-cnn.json")}

    def text(self, name):
        try:
            with open(os.path.join(self.folder, name), errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def json(self, name):
        text = self.text(name)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as e:
            self.problems.append(f"{name}: not JSON ({e}); first line: {text.strip().splitlines()[:1]}")
            return None


def rows_of(doc):
    """A Lathe bench document's result rows, without the 'not supported' ones."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return []
    return [r for r in doc["results"] if isinstance(r, dict) and r.get("supported", True) is not False]


def kind_of(backend):
    return str(backend or "?").split(":")[0]


def prefer_device(rows, kind):
    """The rows measured on the device kind PyTorch ran on, when there are any; else all of them (labelled)."""
    same = [r for r in rows if kind_of(r.get("backend")) == kind]
    return same or rows


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def torch_part(res, key, default):
    v = (res.torch or {}).get(key, default)
    return v if isinstance(v, type(default)) else default


# ---------------------------------------------------------------- machine facts

def git_commit():
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts(res):
    dev = torch_part(res, "device", {})
    m = {"torch_device": dev.get("name"), "torch_device_kind": dev.get("kind"), "sm_count": dev.get("sm_count"),
         "capability": dev.get("capability"), "driver": dev.get("driver"), "torch": dev.get("torch"),
         "torch_cuda": dev.get("cuda"), "date": dev.get("date_utc"), "quick": dev.get("quick"),
         "commit": git_commit(), "run_commit": None, "smi_cuda": None, "nvcc": None, "smi_gpu": None}
    txt = res.machine_txt or ""
    if (g := re.search(r"Driver Version:\s*([\w.]+)", txt)) and not m["driver"]:
        m["driver"] = g.group(1)
    if g := re.search(r"CUDA Version:\s*([\w.]+)", txt):
        m["smi_cuda"] = g.group(1)
    if g := re.search(r"release ([\d.]+), V([\w.]+)", txt):
        m["nvcc"] = g.group(2)
    if g := re.search(r"^\|\s+\d+\s+(.+?)\s{2,}(?:On|Off)\s+\|", txt, re.M):
        m["smi_gpu"] = g.group(1).strip()
    if g := re.search(r"commit ([0-9a-f?]+)", res.summary_txt or ""):
        m["run_commit"] = g.group(1)
    lathe = set()
    for doc in [*res.gemm.values(), res.int8, res.weight_only, res.mlp]:
        for r in rows_of(doc):
            lathe.add(f"{r.get('backend', '?')}: {r.get('device_name', '?')}")
    for doc in res.train.values():
        if isinstance(doc, dict) and doc.get("device"):
            lathe.add(f"{doc['device']} (train)")
    m["lathe_devices"] = sorted(lathe)
    if not m["date"]:
        m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + " (report)"
    return m


# ---------------------------------------------------------------- figures

def torch_gemm(res, dtype, tf32=False, size=None):
    """PyTorch's GEMM row of a dtype (at a size, or its fastest), or None."""
    rows = [g for g in torch_part(res, "gemm", []) if isinstance(g, dict) and g.get("dtype") == dtype
            and bool(g.get("tf32")) == tf32 and num(g.get("tflops")) and (size is None or g.get("m") == size)]
    return max(rows, key=lambda g: g["tflops"]) if rows else None


def ceiling_for(res, dtype, tf32=False):
    """(TFLOP/s, its name) of the fastest PyTorch GEMM of that dtype, or (None, reason)."""
    key = {"i8": "int8", "int8": "int8", "s8": "int8"}.get(dtype, dtype)
    if key == "int8":
        i8 = torch_part(res, "int8_mm", {})
        if num(i8.get("tops")):
            return i8["tops"], f"torch._int_mm {i8.get('m')}³, {i8['tops']:.1f} TOPS"
        return None, "no PyTorch int8 figure"
    g = torch_gemm(res, key, tf32)
    if g:
        label = f"{key}{' TF32' if key == 'f32' and tf32 else ' IEEE' if key == 'f32' else ''}"
        return g["tflops"], f"torch {label} {g['m']}³, {g['tflops']:.1f} TFLOP/s"
    return None, f"no PyTorch {key} GEMM figure"


def copy_gbps(res):
    c = torch_part(res, "copy", {})
    return num(c.get("gbps"))


def gemm_rows(res, kind):
    """Lathe's GEMM rows from every bench-gemm-*.json: (dtype, row)."""
    out = []
    for name, doc in sorted(res.gemm.items()):
        for r in prefer_device(rows_of(doc), kind):
            out.append((str(r.get("dtype", name)), r))
    return out


def lathe_gemm_tflops(r):
    if num(r.get("achieved_tflops")):
        return r["achieved_tflops"]
    if num(r.get("achieved_gflops")):
        return r["achieved_gflops"] / 1e3
    ms = num(r.get("latency_p50_ms"))
    m, n, k = num(r.get("m")), num(r.get("n")), num(r.get("k"))
    return 2.0 * m * n * k / (ms * 1e-3) / 1e12 if ms and m and n and k else None


def int8_shape(r):
    """(m, n, k) of a bench int8 row: MxNxK rows if the bench writes them, else batch x out x in."""
    m = r.get("m", r.get("batch_size"))
    n = r.get("n", r.get("out"))
    k = r.get("k", r.get("in"))
    return (m, n, k) if all(num(v) for v in (m, n, k)) else None


def lathe_int8_tops(r):
    """INT8 TOPS of a row: the bench's own figure when it writes one, else 2mnk over the GEMM-only median (the
    quantize-and-GEMM median when that is all there is). Returns (tops, what was timed)."""
    for key in ("achieved_tops", "tops"):
        if num(r.get(key)):
            return r[key], "as the bench reports"
    if num(r.get("achieved_gops")):
        return r["achieved_gops"] / 1e3, "as the bench reports"
    shape = int8_shape(r)
    if not shape:
        return None, None
    m, n, k = shape
    for key, what in (("int8_gemm_p50_ms", "gemm_int8 alone"), ("latency_p50_ms", "gemm_int8"),
                      ("int8_p50_ms", "quantize_rows + gemm_int8")):
        if num(r.get(key)):
            return 2.0 * m * n * k / (r[key] * 1e-3) / 1e12, what
    return None, None


def weight_only_bytes(r):
    """Bytes a weight-only GEMV row reads and writes: codes + scales (+ zero points) as the bench counts them in
    weight_bytes, the f32 activations and the f32 output."""
    b, i, o = num(r.get("batch_size")), num(r.get("in")), num(r.get("out"))
    w = num(r.get("weight_bytes"))
    return w + 4 * b * i + 4 * b * o if None not in (b, i, o, w) else None

# ---------------------------------------------------------------- every figure

def figure(source, bench, kind, shape, ms=None, throughput=None, fraction=None, ceiling="", note=""):
    return {"source": source, "bench": bench, "type": kind, "shape": shape, "median_ms": ms,
            "throughput": throughput, "roofline_fraction": fraction, "ceiling": ceiling, "note": note}


def frac(value, ceiling):
    return value / ceiling if value and ceiling else None


def flag_above_ceiling(figures):
    """A fraction above 1: against the copy bandwidth, the data was not read from device memory (left in cache);
    against a PyTorch GEMM, that GEMM is a measured figure, not the chip's peak."""
    for x in figures:
        if x["roofline_fraction"] is not None and x["roofline_fraction"] > 1.05 and x["source"] != "PyTorch":
            why = ("above the ceiling: its data was likely cache-resident" if "copy" in str(x["ceiling"])
                   else "above PyTorch's figure, which is measured, not the chip's peak")
            x["note"] = "; ".join(n for n in (x["note"], why) if n)
    return figures


def own_fraction_note(r):
    return f"bench's own roofline_fraction {r['roofline_fraction']:.2f}" if num(r.get("roofline_fraction")) else ""


def all_figures(res, kind):
    f = []
    copy = copy_gbps(res)
    copy_name = f"torch copy, {copy:.0f} GB/s" if copy else "no PyTorch copy figure"
    # PyTorch's own.
    c = torch_part(res, "copy", {})
    if copy:
        f.append(figure("PyTorch", "copy", "bytes", f"{c.get('bytes', 0) / 2**30:.2f} GiB", c.get("median_ms"),
                        f"{copy:.0f} GB/s", 1.0, "itself", "read + write counted"))
    for g in torch_part(res, "gemm", []):
        if not isinstance(g, dict) or not num(g.get("tflops")):
            continue
        ceil, name = ceiling_for(res, g["dtype"], bool(g.get("tf32")))
        label = g["dtype"] + (" TF32" if g.get("tf32") else " IEEE" if g["dtype"] == "f32" else "")
        f.append(figure("PyTorch", "gemm", label, f"{g['m']}×{g['n']}×{g['k']}", g.get("median_ms"),
                        f"{g['tflops']:.1f} TFLOP/s", frac(g["tflops"], ceil), name))
    i8 = torch_part(res, "int8_mm", {})
    if num(i8.get("tops")):
        f.append(figure("PyTorch", "_int_mm", "int8", f"{i8['m']}×{i8['n']}×{i8['k']}", i8.get("median_ms"),
                        f"{i8['tops']:.1f} TOPS", 1.0, "itself"))
    v = torch_part(res, "gemv_f16", {})
    if num(v.get("gbps")):
        f.append(figure("PyTorch", "gemv", str(v.get("dtype")), f"1×{v.get('n')}×{v.get('k')}", v.get("median_ms"),
                        f"{v['gbps']:.0f} GB/s", frac(v["gbps"], copy), copy_name,
                        f"back to back: {v.get('queued_gbps', 0):.0f} GB/s" if num(v.get("queued_gbps")) else ""))
    for r in torch_part(res, "mlp_forward", []):
        if isinstance(r, dict) and num(r.get("median_ms")):
            f.append(figure("PyTorch", "mlp forward", r.get("mode", "?"), f"batch {r.get('batch')}",
                            r["median_ms"], note="latency-bound: no roofline"))
    for r in torch_part(res, "train_epoch", []):
        if isinstance(r, dict) and num(r.get("seconds")):
            f.append(figure("PyTorch", "train epoch", r.get("model", "?"), f"{r.get('images')} images",
                            None, f"{r['seconds']:.2f} s", note=f"{r.get('steps')} steps, loss {r.get('loss', 0):.4f}"))
    # Lathe's.
    for dtype, r in gemm_rows(res, kind):
        tf = lathe_gemm_tflops(r)
        tf32 = bool(r.get("tf32"))
        ceil, name = ceiling_for(res, dtype, tf32)
        f.append(figure(f"Lathe ({r.get('backend')})", "gemm", dtype + (" TF32" if tf32 else ""),
                        f"{r.get('m')}×{r.get('n')}×{r.get('k')}", r.get("latency_p50_ms"),
                        f"{tf:.3g} TFLOP/s" if tf else None, frac(tf, ceil), name, own_fraction_note(r)))
    i8ceil, i8name = ceiling_for(res, "int8")
    for r in prefer_device(rows_of(res.int8), kind):
        shape = int8_shape(r)
        if not shape:  # the per-batch totals over the MLP's layers
            f.append(figure(f"Lathe ({r.get('backend')})", "int8 (all layers)", "W8A8", f"batch {r.get('batch_size')}",
                            r.get("int8_p50_ms"), note=f"f32 {r.get('f32_p50_ms', 0):.4g} ms"))
            continue
        tops, what = lathe_int8_tops(r)
        f.append(figure(f"Lathe ({r.get('backend')})", "int8", "W8A8", "×".join(str(s) for s in shape),
                        r.get("int8_gemm_p50_ms", r.get("latency_p50_ms")), f"{tops:.3g} TOPS" if tops else None,
                        frac(tops, i8ceil), i8name, "; ".join(n for n in (what, own_fraction_note(r)) if n)))
    f32ceil, f32name = ceiling_for(res, "f32")
    seen_dense = set()
    for r in prefer_device(rows_of(res.weight_only), kind):
        b, i, o = r.get("batch_size"), r.get("in"), r.get("out")
        src = f"Lathe ({r.get('backend')})"
        if num(r.get("f32_p50_ms")) and (r.get("backend"), b, i, o) not in seen_dense and None not in (b, i, o):
            seen_dense.add((r.get("backend"), b, i, o))
            ms = r["f32_p50_ms"]
            if b == 1:
                gbps = 4 * (i * o + i + o) / (ms * 1e-3) / 1e9
                f.append(figure(src, "weight-only bench: dense", "f32", f"{b}×{o}×{i}", ms, f"{gbps:.0f} GB/s",
                                frac(gbps, copy), copy_name))
            else:
                tf = 2.0 * b * i * o / (ms * 1e-3) / 1e12
                f.append(figure(src, "weight-only bench: dense", "f32", f"{b}×{o}×{i}", ms, f"{tf:.3g} TFLOP/s",
                                frac(tf, f32ceil), f32name))
        ms = num(r.get("weight_only_p50_ms"))
        if not ms or None in (b, i, o):
            continue
        if b == 1:
            gbps = weight_only_bytes(r) / (ms * 1e-3) / 1e9
            f.append(figure(src, "weight-only", str(r.get("weights")), f"{b}×{o}×{i}", ms, f"{gbps:.0f} GB/s",
                            frac(gbps, copy), copy_name, own_fraction_note(r)))
        else:
            tf = 2.0 * b * i * o / (ms * 1e-3) / 1e12
            f.append(figure(src, "weight-only", str(r.get("weights")), f"{b}×{o}×{i}", ms, f"{tf:.3g} TFLOP/s",
                            frac(tf, f32ceil), f32name + " (f32 activations)", own_fraction_note(r)))
    for r in prefer_device(rows_of(res.mlp), kind):
        how = [w for w, on in (("fused", r.get("fused")), ("CUDA graph", r.get("cuda_graph"))) if on]
        q = r.get("quantize", "none")
        label = ", ".join([q if q != "none" else "f32", *how])
        f.append(figure(f"Lathe ({r.get('backend')})", "mlp forward", label, f"batch {r.get('batch_size')}",
                        r.get("latency_p50_ms"), note=own_fraction_note(r) or "latency-bound: no roofline"))
    for model, doc in res.train.items():
        if isinstance(doc, dict) and num(doc.get("seconds")):
            f.append(figure(f"Lathe ({doc.get('device')})", "train epoch", model,
                            f"{doc.get('train_samples')} images", None, f"{doc['seconds']:.2f} s",
                            note=f"{doc.get('steps')} steps, loss {doc.get('train_loss', 0):.4f}"))
    return flag_above_ceiling(f)
