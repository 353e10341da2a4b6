#!/usr/bin/python3
"""PyTorch reference for Lathe's layers: builds the torch.nn.Sequential an architecture JSON describes
(residual and sequential blocks as modules holding an nn.Sequential `layers`),
loads the given weights under their PyTorch names, runs one forward and backward of the mean
cross-entropy, and writes logits, loss, the input gradient and every parameter gradient.

usage: nn_reference.py CASE.json OUT.json   (run by tests/nn/test_torch_reference.cpp)

CASE.json: {"architecture": {...}, "params": {"layers.0.weight": {"shape": [...], "data": [...]}, ...},
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
    net.load_state_dict(state, strict=True)  # same names and shapes as Lathe's, or this raises
    net.train()  # dropout in the cases has p = 0; train mode keeps it comparable anyway

    shape = case["input_shape"]
    if "ids" in case:
        x = torch.tensor(case["ids"], dtype=torch.long).reshape(shape)
    else:
        pre = arch["input"]
        p = torch.tensor(case["pixels"], dtype=torch.float32).reshape(shape)
        x = ((p * pre.get("scale", 1.0 / 255.0) - pre.get("mean", 0.0)) / pre.get("std", 1.0)).requires_grad_(True)
    labels = torch.tensor(case["labels"], dtype=torch.long)
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()

    out = {
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
