#!/usr/bin/env python3
# Regenerates the malformed IDX and safetensors files under tests/data/malformed/ and the fuzzers'
# seed corpora under tests/fuzz/corpus/. Deterministic: running it twice gives identical files.
import gzip
import io
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MALFORMED = os.path.join(ROOT, "tests", "data", "malformed")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def gz(data):
    # mtime=0 and no file name keep the output byte-identical between runs.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return buf.getvalue()


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def pattern(n, seed=7):
    # A cheap deterministic byte pattern (never all zeros).
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def safetensors(header, data, header_len=None, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    n = len(text) if header_len is None else header_len
    return struct.pack("<Q", n) + text + data


def main():
    m = lambda name: os.path.join(MALFORMED, name)

    # ---- IDX
    images = pattern(10 * 4 * 4)
    good = idx(0x08, [10, 4, 4], images)
    write(m("idx/truncated.idx"), good[:-60])
    write(m("idx/truncated.idx.gz"), gz(good[:-60]))
    write(m("idx/trailing.idx"), good + b"\x01\x02\x03")
    write(m("idx/trailing.idx.gz"), gz(good + b"\x01\x02\x03"))
    write(m("idx/wrong_magic.idx"), b"PK\x03\x04" + good[4:])
    write(m("idx/bad_type.idx"), idx(0x07, [10, 4, 4], images))
    write(m("idx/oversized_dim.idx"), idx(0x08, [0xFFFFFFFF, 0xFFFFFFFF, 28], pattern(64)))
    write(m("idx/oversized_dim.idx.gz"), gz(idx(0x08, [0xFFFFFFFF, 0xFFFFFFFF, 28], pattern(64))))
    write(m("idx/truncated_header.idx"), idx(0x08, [10, 4, 4], b"")[:9])
    write(m("idx/zero_dims.idx"), bytes([0, 0, 0x08, 0]))
    # Claims 100 bytes, inflates to 4 MiB: the reader must stop one byte after the declared 100.
    write(m("idx/bomb.idx.gz"), gz(idx(0x08, [100], b"\x00" * (4 << 20))))
    # A gzip header followed by bytes that are not a deflate stream.
    write(m("idx/corrupt.idx.gz"), gz(good)[:10] + pattern(200, 3))
    # A gzip stream cut in the middle.
    write(m("idx/cut_stream.idx.gz"), gz(good)[:40])

    # ---- safetensors
    w = pattern(2 * 3 * 4, 11)
    b = pattern(3 * 4, 13)
    hdr = {
        "__metadata__": {"format": "pt"},
        "weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]},
    }
    valid = safetensors(hdr, w + b)
    write(m("safetensors/truncated.safetensors"), valid[:-10])
    write(m("safetensors/tiny.safetensors"), valid[:5])
    write(m("safetensors/header_larger_than_file.safetensors"), safetensors(hdr, w + b, header_len=4096))
    write(m("safetensors/header_huge.safetensors"), safetensors(hdr, w + b, header_len=1 << 62))
    text = json.dumps(hdr).encode()[:-5] + b",,}"
    write(m("safetensors/bad_json.safetensors"), struct.pack("<Q", len(text)) + text + w + b)
    write(m("safetensors/not_object.safetensors"), safetensors([1, 2, 3], b""))
    bad_dtype = json.loads(json.dumps(hdr))
    bad_dtype["weight"]["dtype"] = "F64"
    write(m("safetensors/wrong_dtype.safetensors"), safetensors(bad_dtype, w + b))
    overlap = json.loads(json.dumps(hdr))
    overlap["bias"]["data_offsets"] = [20, 32]
    write(m("safetensors/overlapping_offsets.safetensors"), safetensors(overlap, w + b[:8]))
    past = json.loads(json.dumps(hdr))
    past["bias"]["data_offsets"] = [24, 60]
    past["bias"]["shape"] = [9]
    write(m("safetensors/offsets_past_end.safetensors"), safetensors(past, w + b))
    reversed_ = json.loads(json.dumps(hdr))
    reversed_["bias"]["data_offsets"] = [36, 24]
    write(m("safetensors/offsets_reversed.safetensors"), safetensors(reversed_, w + b))
    mismatch = json.loads(json.dumps(hdr))
    mismatch["bias"]["shape"] = [4]
    write(m("safetensors/size_mismatch.safetensors"), safetensors(mismatch, w + b))
    overflow = json.loads(json.dumps(hdr))
    overflow["weight"]["shape"] = [4611686018427387904, 4611686018427387904]
    write(m("safetensors/shape_overflow.safetensors"), safetensors(overflow, w + b))
    negative = json.loads(json.dumps(hdr))
    negative["weight"]["shape"] = [-2, -3]
    write(m("safetensors/negative_shape.safetensors"), safetensors(negative, w + b))
    write(m("safetensors/trailing_bytes.safetensors"), valid + b"hidden payload")
    meta = json.loads(json.dumps(hdr))
    meta["__metadata__"] = {"epochs": 3}
    write(m("safetensors/metadata_not_string.safetensors"), safetensors(meta, w + b))
    missing = json.loads(json.dumps(hdr))
    del missing["bias"]["data_offsets"]
    write(m("safetensors/missing_offsets.safetensors"), safetensors(missing, w + b))
    deep = b"{\"a\":" + b"[" * 5000 + b"]" * 5000 + b"}"
    write(m("safetensors/deep_nesting.safetensors"), struct.pack("<Q", len(deep)) + deep)

    # ---- fuzzer seed corpora: small valid files and a few near-misses
    c = lambda name: os.path.join(CORPUS, name)
    write(c("idx/u8_3d.idx"), good)
    write(c("idx/u8_3d.idx.gz"), gz(good))
    write(c("idx/labels_1d.idx"), idx(0x08, [12], bytes(i % 10 for i in range(12))))
    write(c("idx/f32_2d.idx"), idx(0x0D, [2, 3], struct.pack(">6f", 0.5, -1.0, 2.0, 3.5, -0.25, 8.0)))
    write(c("idx/i16_1d.idx"), idx(0x0B, [4], struct.pack(">4h", 1, -2, 300, -400)))
    write(c("idx/f64_1d.idx.gz"), gz(idx(0x0E, [2], struct.pack(">2d", 1.5, -2.25))))
    write(c("idx/empty_dim.idx"), idx(0x0C, [0, 5], b""))
    write(c("idx/truncated.idx"), good[:-60])
    write(c("safetensors/two_f32.safetensors"), valid)
    mixed = {
        "__metadata__": {"lathe.architecture": "{\"name\":\"x\"}", "format": "pt"},
        "a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]},
        "b": {"dtype": "BF16", "shape": [3], "data_offsets": [8, 14]},
        "c": {"dtype": "I8", "shape": [2], "data_offsets": [14, 16]},
        "d": {"dtype": "I32", "shape": [1], "data_offsets": [16, 20]},
        "e": {"dtype": "U8", "shape": [4], "data_offsets": [20, 24]},
        "s": {"dtype": "F32", "shape": [], "data_offsets": [24, 28]},
        "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [28, 28]},
    }
    write(c("safetensors/every_dtype.safetensors"), safetensors(mixed, pattern(28, 5)))
    write(c("safetensors/empty.safetensors"), safetensors({}, b""))
    write(c("safetensors/overlap.safetensors"), safetensors(overlap, w + b[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
