#!/usr/bin/python3
"""PyTorch reference for Lathe's layers: builds the torch.nn.Sequential an architecture JSON describes
(residual and sequential blocks as modules holding an nn.Sequential `layers`),
loads the given weights and buffers under their PyTorch names, runs the optional warm-up batches through
training-mode forwards (they only move BatchNorm's running statistics), then one forward and backward of the
mean cross-entropy, and writes logits, loss, the input gradient, every parameter gradient, every buffer after
that step, and the logits of an evaluation-mode forward of the same input.

usage: nn_reference.py CASE.json OUT.json   (run by tests/nn/test_torch_reference.cpp)

CASE.json: {"architecture": {...}, "params": {"layers.0.weight": {"shape": [...], "data": [...]}, ...},
            "buffers": {"layers.1.running_mean": {"shape": [...], "data": [...]}, ...} (optional),
            "warmup_pixels": [[...], ...] (optional: raw pixels of earlier batches, each of input_shape),
            "pixels": [...] (raw 0..255 values, preprocessed here as (p * scale - mean) / std)
            or "ids": [...] (for a model that starts with an embedding), "input_shape": [N, ...],
            "labels": [...]}
"""
import json
import sys

import torch
from torch import nn


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def make_layer(c):
    t = c["type"]
    if t == "linear":
        return nn.Linear(c["in"], c["out"], bias=c.get("bias", True))
    if t == "conv2d":
        return nn.Conv2d(c["in"], c["out"], pair(c["kernel"]), stride=pair(c.get("stride", 1)),
                         padding=pair(c.get("padding", 0)), groups=c.get("groups", 1), bias=c.get("bias", True))
    if t == "maxpool2d":
        kernel = pair(c["kernel"])
        return nn.MaxPool2d(kernel, stride=pair(c.get("stride", c["kernel"])), padding=pair(c.get("padding", 0)))
    if t == "relu":
        return nn.ReLU()
    if t == "gelu":
        return nn.GELU()  # exact (erf), as Lathe's backends
    if t == "dropout":
        return nn.Dropout(c.get("p", 0.5))
    if t == "flatten":
        return nn.Flatten()
    if t == "layernorm":
        return nn.LayerNorm(c["dim"], eps=c.get("eps", 1e-5))
    if t == "batchnorm2d":
        return nn.BatchNorm2d(c["features"], eps=c.get("eps", 1e-5), momentum=c.get("momentum", 0.1))
    if t == "embedding":
        return nn.Embedding(c["num"], c["dim"])
    if t == "sequential":
        return Block(c["layers"])
    if t == "residual":
        return Residual(c["layers"])
    raise ValueError("unknown layer type " + t)


class Block(nn.Module):
    """Lathe's `sequential` block: its children in an nn.Sequential called `layers`, which gives the
    parameter names Lathe uses ("layers.3.layers.0.weight")."""

    def __init__(self, configs):
        super().__init__()
        self.layers = nn.Sequential(*[make_layer(c) for c in configs])

    def forward(self, x):
        return self.layers(x)


class Residual(Block):
    """Lathe's `residual` block: y = x + f(x)."""

    def forward(self, x):
        return x + self.layers(x)


class Net(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.layers = nn.Sequential(*[make_layer(c) for c in arch["layers"]])

    def forward(self, x):
        return self.layers(x)


def main():
    with open(sys.argv[1]) as f:
        case = json.load(f)
    arch = case["architecture"]
    net = Net(arch)
    state = {name: torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"])
             for name, p in case["params"].items()}
    for name, b in case.get("buffers", {}).items():
        dtype = torch.long if name.endswith("num_batches_tracked") else torch.float32
        state[name] = torch.tensor(b["data"], dtype=dtype).reshape(b["shape"])
    net.load_state_dict(state, strict=True)  # same names and shapes as Lathe's, or this raises
    net.train()  # dropout in the cases has p = 0; train mode keeps it comparable anyway

    shape = case["input_shape"]
    pre = arch["input"]

    def preprocess(pixels):
        p = torch.tensor(pixels, dtype=torch.float32).reshape(shape)
        return (p * pre.get("scale", 1.0 / 255.0) - pre.get("mean", 0.0)) / pre.get("std", 1.0)

    with torch.no_grad():
        for pixels in case.get("warmup_pixels", []):
            net(preprocess(pixels))
    if "ids" in case:
        x = torch.tensor(case["ids"], dtype=torch.long).reshape(shape)
    else:
        x = preprocess(case["pixels"]).requires_grad_(True)
    labels = torch.tensor(case["labels"], dtype=torch.long)
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()

    net.eval()
    with torch.no_grad():
        eval_logits = net(x.detach())

    out = {
        "eval_logits": eval_logits.reshape(-1).tolist(),
        "buffers": {name: b.reshape(-1).tolist() for name, b in net.named_buffers()},
        "logits": logits.detach().reshape(-1).tolist(),
        "loss": loss.item(),
        "input": x.detach().reshape(-1).tolist() if x.dtype == torch.float32 else [],
        "input_grad": x.grad.reshape(-1).tolist() if x.dtype == torch.float32 else [],
        "grads": {name: p.grad.reshape(-1).tolist() for name, p in net.named_parameters()},
        "torch_version": torch.__version__,
    }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
