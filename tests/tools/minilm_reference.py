#!/usr/bin/env python3
"""Reference for Lathe's MiniLM (all-MiniLM-L6-v2): Hugging Face `tokenizers` for the token ids, and a BERT
forward written here in PyTorch straight from model.safetensors (no transformers package): attention masked at
[PAD], mean pooling over the attention mask, L2 normalisation. Run it through tests/tools/tokenizers_env.sh
(a venv with `tokenizers` that also sees Debian's PyTorch).

  tokenizers_env.sh minilm_reference.py sanity                      the three-sentence check of issue 14
  tokenizers_env.sh minilm_reference.py tokenize LINES OUT          ids of each line (tokenizer.json's padding)
  tokenizers_env.sh minilm_reference.py embed LINES OUT             one L2-normalised embedding per line
  tokenizers_env.sh minilm_reference.py bench LINES --batch 1 64    sentences/s of this forward on the CPU
  /usr/bin/python3 minilm_reference.py embed-ids IDS OUT             embeddings of given token ids (no tokenizers
                                                                     needed): one line of ids per sentence,
                                                                     right-padded with pad_token_id

LINES holds one sentence per line (UTF-8). OUT gets one line per sentence: space-separated ids, or floats
printed with 9 significant digits. The model folder is --model DIR, else $LATHE_MINILM_DIR, else the one
`lathe-cli models fetch minilm` fills (~/.cache/lathe/models/minilm-l6-v2/model).
"""
import argparse
import json
import math
import os
import struct
import sys
import time


def default_model_dir():
    if os.environ.get("LATHE_MINILM_DIR"):
        return os.environ["LATHE_MINILM_DIR"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "lathe", "models", "minilm-l6-v2", "model")


def read_safetensors(path):
    import torch
    dtypes = {"F32": torch.float32, "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


class MiniLM:
    """BERT encoder (post-LN blocks, exact GELU) + mean pooling + L2 norm, from the checkpoint's tensors."""

    def __init__(self, model_dir):
        import torch
        self.torch = torch
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.heads = self.cfg["num_attention_heads"]
        self.layers = self.cfg["num_hidden_layers"]
        self.eps = self.cfg.get("layer_norm_eps", 1e-12)

    def _ln(self, x, prefix):
        F = self.torch.nn.functional
        return F.layer_norm(x, x.shape[-1:], self.w[prefix + ".weight"], self.w[prefix + ".bias"], self.eps)

    def _lin(self, x, prefix):
        return x @ self.w[prefix + ".weight"].t() + self.w[prefix + ".bias"]

    def forward(self, ids, type_ids, mask):
        torch, w = self.torch, self.w
        n, t = ids.shape  # (N, T)
        pos = torch.arange(t).unsqueeze(0).expand(n, t)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos] \
            + w["embeddings.token_type_embeddings.weight"][type_ids]  # (N, T, C)
        x = self._ln(x, "embeddings.LayerNorm")
        c = x.shape[-1]
        d = c // self.heads
        # Keys at [PAD] get -inf before the softmax: no query attends to padding.
        bias = torch.zeros(n, 1, 1, t)
        bias[mask.unsqueeze(1).unsqueeze(1) == 0] = float("-inf")
        for i in range(self.layers):
            p = "encoder.layer.%d." % i

            def split(y):  # (N, T, C) -> (N, H, T, D)
                return y.view(n, t, self.heads, d).transpose(1, 2)
            q = split(self._lin(x, p + "attention.self.query"))
            k = split(self._lin(x, p + "attention.self.key"))
            v = split(self._lin(x, p + "attention.self.value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)  # (N, H, T, T)
            ctx = (att @ v).transpose(1, 2).reshape(n, t, c)
            x = self._ln(x + self._lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = torch.nn.functional.gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(x + self._lin(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask.unsqueeze(-1).to(x.dtype)  # (N, T, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def load_tokenizer(model_dir):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def encode(tok, sentences):
    import torch
    enc = tok.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
    types = torch.tensor([e.type_ids for e in enc], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
    return ids, types, mask


def embed(model, tok, sentences, batch=64):
    import torch
    out = []
    with torch.no_grad():
        for i in range(0, len(sentences), batch):
            out.append(model.forward(*encode(tok, sentences[i:i + batch])))
    return torch.cat(out) if out else torch.zeros(0, model.cfg["hidden_size"])


def write_rows(path, e):
    with open(path, "w") as f:
        for row in e.tolist():
            f.write(" ".join("%.9g" % v for v in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["sanity", "tokenize", "embed", "embed-ids", "bench"])
    ap.add_argument("lines", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--model", default=default_model_dir())
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seconds", type=float, default=3.0, help="bench: time per batch size")
    args = ap.parse_args()
    if args.command not in ("sanity", "bench") and (not args.lines or not args.out):
        sys.exit("minilm_reference: %s needs LINES and OUT" % args.command)
    if not os.path.exists(os.path.join(args.model, "model.safetensors")):
        sys.exit("minilm_reference: no model.safetensors in %s (run: lathe-cli models fetch minilm)" % args.model)
    import torch
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.command == "embed-ids":
        model = MiniLM(args.model)
        pad = model.cfg.get("pad_token_id", 0)
        with open(args.lines) as f:
            ids = torch.tensor([[int(v) for v in line.split()] for line in f if line.strip()], dtype=torch.long)
        real = (ids != pad).long()
        # Right padding: every position up to the last real token counts.
        lengths = real.shape[1] - (real.flip(1).cumsum(1) == 0).sum(1)
        mask = (torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
        with torch.no_grad():
            e = model.forward(ids, torch.zeros_like(ids), mask)
        write_rows(args.out, e)
        return
    tok = load_tokenizer(args.model)

    if args.command == "tokenize":
        with open(args.out, "w") as f:
            for e in tok.encode_batch(read_lines(args.lines)):
                f.write(" ".join(map(str, e.ids)) + "\n")
        return
    model = MiniLM(args.model)
    if args.command == "sanity":
        s = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply today."]
        e = embed(model, tok, s)
        print("cos(guitar, instrument) = %.4f" % float(e[0] @ e[1]))
        print("cos(guitar, stock market) = %.4f" % float(e[0] @ e[2]))
    elif args.command == "embed":
        write_rows(args.out, embed(model, tok, read_lines(args.lines)))
    else:
        for row in bench(model, tok, read_lines(args.lines), args.batch, args.seconds):
            print(json.dumps(row))


def bench(model, tok, sentences, batches, seconds):
    """Median forward time per batch of already tokenized sentences (as Lathe's bench times its forward)."""
    import statistics
    import torch
    rows = []
    for b in batches:
        chunk = (sentences * (b // max(len(sentences), 1) + 1))[:b]
        enc = encode(tok, chunk)
        times = []
        with torch.no_grad():
            model.forward(*enc)  # warm-up
            t_end = time.perf_counter() + seconds
            while time.perf_counter() < t_end or len(times) < 5:
                t0 = time.perf_counter()
                model.forward(*enc)
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append({"impl": "pytorch", "batch_size": b, "threads": torch.get_num_threads(), "repeats": len(times),
                     "latency_p50_ms": med * 1e3, "sentences_per_s": b / med})
    return rows

if __name__ == "__main__":
    main()
