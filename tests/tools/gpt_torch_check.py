#!/usr/bin/python3
# PyTorch side of the transformer interop test (tests/nn/test_gpt_torch.cpp): loads a model Lathe saved
# (DIR/lathe_gpt.safetensors, its architecture in the file's metadata) into a PyTorch module built from that
# architecture with load_state_dict(strict=True) -- so every parameter name and shape is PyTorch's -- runs the
# token ids of DIR/lathe_gpt_io.safetensors and compares PyTorch's logits with Lathe's.
# Exit codes: 0 agree, 1 disagree or bad file, 77 torch unavailable.
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    from torch import nn
    from torch_interop import read_safetensors
except ImportError as e:  # pragma: no cover
    print(f"torch unavailable: {e}", file=sys.stderr)
    sys.exit(77)

# float32 on both sides, different summation orders (OpenBLAS vs torch's GEMMs, a softmax per row); observed
# normalized errors are ~1e-7. 1e-5 leaves a wide margin and is far below any wrong mask or layout (order 1).
TOLERANCE = 1e-5


class Attention(nn.Module):
    """Lathe's `attention` layer: (N, T, 3D) -> (N, T, D), Q, K, V the three column blocks, heads side by side."""

    def __init__(self, heads, causal):
        super().__init__()
        self.heads, self.causal = heads, causal

    def forward(self, x):
        n, t, d3 = x.shape
        d = d3 // 3
        q, k, v = x.split(d, dim=2)
        split = lambda z: z.view(n, t, self.heads, d // self.heads).transpose(1, 2)  # (N, H, T, Dh)
        q, k, v = split(q), split(k), split(v)
        s = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if self.causal:
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return (s.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d)


class PositionEmbedding(nn.Module):
    def __init__(self, num, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num, dim))

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


class Residual(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.layers(x)


class Block(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class TiedLinear(nn.Module):
    """A head whose weight is another module's parameter (not registered here, as Lathe saves it once)."""

    def __init__(self, owner):
        super().__init__()
        self.owner = [owner]  # a list keeps the owner out of this module's state_dict

    def forward(self, x):
        return x @ self.owner[0].weight.t()


def build(specs, root, mods):
    """Appends the modules of `specs` to mods; root is the top-level list a tied head points into."""
    for spec in specs:
        kind = spec["type"]
        if kind == "linear":
            mods.append(nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True)))
        elif kind == "layernorm":
            mods.append(nn.LayerNorm(spec["dim"], eps=spec.get("eps", 1e-5)))
        elif kind == "gelu":
            mods.append(nn.GELU())
        elif kind == "embedding":
            mods.append(nn.Embedding(spec["num"], spec["dim"]))
        elif kind == "position_embedding":
            mods.append(PositionEmbedding(spec["num"], spec["dim"]))
        elif kind == "attention":
            mods.append(Attention(spec["heads"], spec.get("causal", False)))
        elif kind == "residual":
            mods.append(Residual(build(spec["layers"], root, [])))
        elif kind == "sequential":
            mods.append(Block(build(spec["layers"], root, [])))
        elif kind == "tied_linear":
            # "layers.<i>.weight" of the top-level sequence
            index = int(spec["weight"].split(".")[1])
            mods.append(TiedLinear(root[index]))
        else:
            raise SystemExit(f"unsupported layer type {kind}")
    return mods


class Net(nn.Module):
    def __init__(self, arch):
        super().__init__()
        top = []
        build(arch["layers"], top, top)
        self.layers = nn.Sequential(*top)

    def forward(self, ids):
        return self.layers(ids)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: gpt_torch_check.py DIR")
    folder = sys.argv[1]
    state, metadata = read_safetensors(os.path.join(folder, "lathe_gpt.safetensors"))
    arch = json.loads(metadata["lathe.architecture"])
    net = Net(arch)
    net.load_state_dict(state, strict=True)
    net.eval()
    io, _ = read_safetensors(os.path.join(folder, "lathe_gpt_io.safetensors"))
    with torch.no_grad():
        logits = net(io["ids"].long())
    ref = io["logits"]
    err = ((logits - ref).norm() / ref.norm()).item()
    print(f"{len(state)} tensors loaded strictly; logits {tuple(logits.shape)}, normalized error {err:.3e} (tolerance {TOLERANCE})")
    sys.exit(0 if err < TOLERANCE else 1)


if __name__ == "__main__":
    main()
