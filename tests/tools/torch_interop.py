#!/usr/bin/python3
# PyTorch side of the model-file interop test (tests/data_io/test_torch_interop.cpp).
#   torch_interop.py export DIR {mlp,cnn,grouped,cnn-bn}  writes a PyTorch model as DIR/torch_model.safetensors (a plain
#       state_dict, no Lathe metadata), its architecture as DIR/architecture.json, and DIR/torch_io.safetensors
#       with random uint8 "pixels" and PyTorch's "logits" for them.
#   torch_interop.py check DIR  loads DIR/lathe_model.safetensors (written by Lathe) into torch with
#       load_state_dict(strict=True), runs DIR/lathe_io.safetensors' "pixels" and compares with Lathe's "logits".
# safetensors files are read and written by hand (struct + json): the safetensors package is not in Debian.
# Exit codes: 0 agree, 1 disagree or bad file, 77 torch unavailable.
import json
import struct
import sys

try:
    import torch
    from torch import nn
except ImportError as e:  # pragma: no cover
    print(f"torch unavailable: {e}", file=sys.stderr)
    sys.exit(77)

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32,
          "I8": torch.int8, "U8": torch.uint8, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}
# float32 logits from two GEMM implementations summing in different orders; the CNN's 3136-long
# dot products see the largest spread. Measured errors are ~1e-7 normalized; this leaves margin.
TOLERANCE = 1e-5


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu()
        raw = data.view(torch.uint8).numpy().tobytes() if data.dtype == torch.bfloat16 else data.numpy().tobytes()
        header[name] = {"dtype": NAMES[data.dtype], "shape": list(data.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        raw = bytearray(data[begin:end])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, metadata


class Net(nn.Module):
    """Lathe's Model: an nn.Sequential held as `layers`, so parameters are named layers.<i>.<param>."""

    def __init__(self, arch):
        super().__init__()
        mods = []
        for spec in arch["layers"]:
            kind = spec["type"]
            if kind == "linear":
                mods.append(nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True)))
            elif kind == "conv2d":
                mods.append(nn.Conv2d(spec["in"], spec["out"], spec["kernel"], stride=spec.get("stride", 1),
                                      padding=spec.get("padding", 0), groups=spec.get("groups", 1),
                                      bias=spec.get("bias", True)))
            elif kind == "maxpool2d":
                mods.append(nn.MaxPool2d(spec["kernel"], stride=spec.get("stride", spec["kernel"]),
                                         padding=spec.get("padding", 0)))
            elif kind == "relu":
                mods.append(nn.ReLU())
            elif kind == "gelu":
                mods.append(nn.GELU())
            elif kind == "dropout":
                mods.append(nn.Dropout(spec["p"]))
            elif kind == "flatten":
                mods.append(nn.Flatten())
            elif kind == "layernorm":
                mods.append(nn.LayerNorm(spec["dim"], eps=spec.get("eps", 1e-5)))
            elif kind == "batchnorm2d":
                mods.append(nn.BatchNorm2d(spec["features"], eps=spec.get("eps", 1e-5),
                                           momentum=spec.get("momentum", 0.1)))
            else:
                raise ValueError(f"layer type {kind} has no PyTorch counterpart here")
        self.layers = nn.Sequential(*mods)
        inp = arch["input"]
        self.scale, self.mean, self.std = inp.get("scale", 1 / 255), inp.get("mean", 0.0), inp.get("std", 1.0)

    def preprocess(self, pixels):
        return (pixels.float() * self.scale - self.mean) / self.std

    def forward(self, x):
        return self.layers(x)


def architecture(kind):
    inp = {"shape": [1, 28, 28], "scale": 1 / 255, "mean": 0.2860, "std": 0.3530}
    if kind == "mlp":
        layers = [{"type": "flatten"}, {"type": "linear", "in": 784, "out": 256}, {"type": "relu"},
                  {"type": "linear", "in": 256, "out": 128}, {"type": "relu"},
                  {"type": "linear", "in": 128, "out": 10}]
    elif kind == "cnn":
        layers = [{"type": "conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"},
                  {"type": "maxpool2d", "kernel": 2},
                  {"type": "conv2d", "in": 8, "out": 16, "kernel": 3, "padding": 1}, {"type": "gelu"},
                  {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"},
                  {"type": "linear", "in": 784, "out": 32}, {"type": "relu"}, {"type": "dropout", "p": 0.3},
                  {"type": "linear", "in": 32, "out": 10}]
    elif kind == "grouped":  # a grouped conv (2 groups) and a depthwise-separable block
        layers = [{"type": "conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"},
                  {"type": "maxpool2d", "kernel": 2},
                  {"type": "conv2d", "in": 8, "out": 12, "kernel": 3, "padding": 1, "groups": 2}, {"type": "relu"},
                  {"type": "conv2d", "in": 12, "out": 12, "kernel": 3, "stride": 2, "padding": 1, "groups": 12},
                  {"type": "relu"}, {"type": "conv2d", "in": 12, "out": 16, "kernel": 1}, {"type": "relu"},
                  {"type": "flatten"}, {"type": "linear", "in": 784, "out": 10}]
    elif kind == "cnn-bn":  # conv-BN blocks, the convolutions without bias (as torchvision's)
        layers = [{"type": "conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1, "bias": False},
                  {"type": "batchnorm2d", "features": 8}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
                  {"type": "conv2d", "in": 8, "out": 16, "kernel": 3, "padding": 1, "bias": False},
                  {"type": "batchnorm2d", "features": 16, "eps": 1e-3, "momentum": 0.2}, {"type": "gelu"},
                  {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"},
                  {"type": "linear", "in": 784, "out": 32}, {"type": "relu"}, {"type": "dropout", "p": 0.3},
                  {"type": "linear", "in": 32, "out": 10}]
    else:
        raise ValueError(f"unknown kind {kind} (mlp, cnn, grouped, cnn-bn)")
    return {"name": f"torch-{kind}", "input": inp, "classes": 10, "layers": layers}


def compare(ours, theirs):
    diff = (ours.double() - theirs.double())
    return {"max_abs_diff": diff.abs().max().item(),
            "normalized_error": (diff.norm() / theirs.double().norm().clamp_min(1e-30)).item()}


def export(out_dir, kind):
    torch.manual_seed(20240 + len(kind))
    arch = architecture(kind)
    model = Net(arch).eval()
    # Move the parameters away from PyTorch's init so a wrong mapping cannot pass by accident.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        # Running statistics as training would leave them (evaluation mode uses them).
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.add_(0.5 * torch.randn_like(m.weight))
                m.running_mean.copy_(0.3 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
                m.num_batches_tracked.fill_(17)
    write_safetensors(f"{out_dir}/torch_model.safetensors", model.state_dict(), {"format": "pt"})
    with open(f"{out_dir}/architecture.json", "w") as f:
        json.dump(arch, f, indent=2)
    pixels = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(model.preprocess(pixels))
    write_safetensors(f"{out_dir}/torch_io.safetensors", {"pixels": pixels, "logits": logits})
    print(json.dumps({"exported": kind, "parameters": sum(p.numel() for p in model.parameters())}))
    return 0


def check(out_dir):
    tensors, metadata = read_safetensors(f"{out_dir}/lathe_model.safetensors")
    if "lathe.architecture" not in metadata:
        print("lathe_model.safetensors has no lathe.architecture metadata", file=sys.stderr)
        return 1
    arch = json.loads(metadata["lathe.architecture"])
    model = Net(arch).eval()
    model.load_state_dict(tensors, strict=True)  # raises on a missing, unexpected or reshaped tensor
    io, _ = read_safetensors(f"{out_dir}/lathe_io.safetensors")
    with torch.no_grad():
        logits = model(model.preprocess(io["pixels"]))
    result = compare(io["logits"], logits)
    result["checked"] = arch["name"]
    result["tolerance"] = TOLERANCE
    print(json.dumps(result))
    return 0 if result["normalized_error"] <= TOLERANCE else 1


def main(argv):
    torch.set_num_threads(1)
    if len(argv) >= 4 and argv[1] == "export":
        return export(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__ or "usage: torch_interop.py export DIR {mlp,cnn,grouped,cnn-bn} | check DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
