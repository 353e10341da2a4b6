#!/usr/bin/env python3
"""Writes the tiny BERT checkpoints of the tests (random weights, fixed seed; numpy-free, /usr/bin/python3 with
PyTorch): tests/data/bert/tiny (a valid BertModel checkpoint in Hugging Face's layout, with the tiny WordPiece
tokenizer) and the malformed ones under tests/data/malformed/bert (a tensor whose shape disagrees with
config.json, a missing tensor, an activation other than GELU).

  /usr/bin/python3 tests/tools/make_tiny_bert.py
"""
import json
import os
import shutil
import struct

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": 8,
          "intermediate_size": 16, "layer_norm_eps": 1e-12, "max_position_embeddings": 16,
          "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": 0,
          "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": 26}


def tensors(cfg, seed=14):
    g = torch.Generator().manual_seed(seed)
    h, f = cfg["hidden_size"], cfg["intermediate_size"]

    def r(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g) * scale).float()
    t = {"embeddings.word_embeddings.weight": r(cfg["vocab_size"], h),
         "embeddings.position_embeddings.weight": r(cfg["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": r(cfg["type_vocab_size"], h),
         "embeddings.LayerNorm.weight": 1 + r(h, scale=0.1), "embeddings.LayerNorm.bias": r(h, scale=0.1),
         "embeddings.position_ids": torch.arange(cfg["max_position_embeddings"]).unsqueeze(0)}
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        for n in ("query", "key", "value"):
            t[p + "attention.self.%s.weight" % n] = r(h, h)
            t[p + "attention.self.%s.bias" % n] = r(h, scale=0.1)
        t[p + "attention.output.dense.weight"] = r(h, h)
        t[p + "attention.output.dense.bias"] = r(h, scale=0.1)
        t[p + "attention.output.LayerNorm.weight"] = 1 + r(h, scale=0.1)
        t[p + "attention.output.LayerNorm.bias"] = r(h, scale=0.1)
        t[p + "intermediate.dense.weight"] = r(f, h)
        t[p + "intermediate.dense.bias"] = r(f, scale=0.1)
        t[p + "output.dense.weight"] = r(h, f)
        t[p + "output.dense.bias"] = r(h, scale=0.1)
        t[p + "output.LayerNorm.weight"] = 1 + r(h, scale=0.1)
        t[p + "output.LayerNorm.bias"] = r(h, scale=0.1)
    t["pooler.dense.weight"] = r(h, h)  # BertModel's pooler: present in such files, unused by the encoder
    t["pooler.dense.bias"] = r(h)
    return t


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes() if hasattr(t, "numpy") else bytes(t)
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def checkpoint(folder, cfg, t, tokenizer=True):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(folder, "model.safetensors"), t)
    if tokenizer:
        shutil.copy(os.path.join(ROOT, "tokenizers", "tiny_wordpiece.json"), os.path.join(folder, "tokenizer.json"))


def main():
    checkpoint(os.path.join(ROOT, "bert", "tiny"), CONFIG, tensors(CONFIG))
    bad = os.path.join(ROOT, "malformed", "bert")
    t = tensors(CONFIG)
    t["encoder.layer.1.intermediate.dense.weight"] = t["encoder.layer.1.intermediate.dense.weight"][:12].clone()
    checkpoint(os.path.join(bad, "shape_mismatch"), CONFIG, t, tokenizer=False)
    t = tensors(CONFIG)
    del t["encoder.layer.0.attention.self.key.bias"]
    checkpoint(os.path.join(bad, "missing_tensor"), CONFIG, t, tokenizer=False)
    cfg = dict(CONFIG, hidden_act="relu")
    checkpoint(os.path.join(bad, "relu_config"), cfg, tensors(CONFIG), tokenizer=False)


if __name__ == "__main__":
    main()
