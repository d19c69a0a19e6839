#!/usr/bin/env python3
"""Writes small ONNX models built with onnx.helper, with inputs drawn at random and the outputs
onnxruntime computes for them, in the layout of onnx's node test data (<case>/model.onnx,
<case>/test_data_set_N/{input,output}_K.pb, <case>/tolerance.json). tests/io/onnx_node_test.cpp
(OnnxOrtCases) imports each model into Loom, runs it and compares.

The cases cover what the node suite cannot: shape arithmetic on dynamic dims (Shape -> Gather ->
Concat -> Reshape with dim_params, data sets of different batch / sequence sizes run through one
import), the quantization ops (QuantizeLinear / DequantizeLinear per tensor, per axis and blocked,
DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, com.microsoft MatMulNBits) and If with a
constant condition.

usage: onnx_ort_cases.py OUTPUT_DIR   (exits 0 without writing when onnxruntime is missing)
"""
import json
import os
import sys

import numpy as np

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper
except ImportError as e:  # the C++ test skips when the folder is empty
    print(f"onnx_ort_cases: {e}; no cases written")
    sys.exit(0)

RNG = np.random.default_rng(7)
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def model(nodes, inputs, outputs, inits=(), opset=17, ms=False):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    ops = [h.make_opsetid("", opset)]
    if ms:
        ops.append(h.make_opsetid("com.microsoft", 1))
    m = h.make_model(g, opset_imports=ops)
    m.ir_version = 8 if opset < 21 else 10
    return m


def vi(name, elem, dims):
    return h.make_tensor_value_info(name, elem, dims)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def const(name, values, dtype=np.int64):
    return h.make_node("Constant", [], [name], value=init(name + "_v", np.array(values, dtype)))


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# --- shape arithmetic on dynamic dims ------------------------------------------------------


@case
def dyn_reshape_heads():
    # [b, s, 64] -> [b, s, 4, 16] -> transpose -> back to [b, s, 64], shapes from Shape(x).
    w = init("w", f32(64, 64))
    n = [
        h.make_node("MatMul", ["x", "w"], ["xw"]),
        h.make_node("Shape", ["xw"], ["shp"]),
        const("i0", 0), const("i1", 1), const("heads", [4, 16]), const("ax0", [0]),
        h.make_node("Gather", ["shp", "i0"], ["b"], axis=0),
        h.make_node("Gather", ["shp", "i1"], ["s"], axis=0),
        h.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        h.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
        h.make_node("Concat", ["b1", "s1", "heads"], ["t4"], axis=0),
        h.make_node("Reshape", ["xw", "t4"], ["x4"]),
        h.make_node("Transpose", ["x4"], ["xt"], perm=[0, 2, 1, 3]),
        h.make_node("Softmax", ["xt"], ["sm"], axis=-1),
        h.make_node("Transpose", ["sm"], ["xb"], perm=[0, 2, 1, 3]),
        const("m1", [-1]),
        h.make_node("Concat", ["b1", "s1", "m1"], ["t3"], axis=0),
        h.make_node("Reshape", ["xb", "t3"], ["y"]),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["batch", "seq", 64])], [vi("y", TP.FLOAT, None)], [w])
    return m, [[f32(2, 5, 64)], [f32(3, 7, 64)], [f32(1, 1, 64)]]


@case
def dyn_reshape_from_other_input():
    # The target comes from Shape(ids) ([batch, seq]), reshaping another input with the same
    # dim_params: [batch, seq*8] -> [batch, seq, 8].
    n = [
        h.make_node("Shape", ["ids"], ["shp"]),
        const("eight", [8]),
        h.make_node("Concat", ["shp", "eight"], ["t"], axis=0),
        h.make_node("Reshape", ["x", "t"], ["r"]),
        h.make_node("Cast", ["ids"], ["idf"], to=TP.FLOAT),
        const("ax2", [2]),
        h.make_node("Unsqueeze", ["idf", "ax2"], ["idu"]),
        h.make_node("Mul", ["r", "idu"], ["y"]),
    ]
    m = model(n, [vi("ids", TP.INT64, ["batch", "seq"]), vi("x", TP.FLOAT, ["batch", "seqx8"])],
              [vi("y", TP.FLOAT, None)])
    ds = []
    for b, s in ((2, 3), (1, 6)):
        ds.append([RNG.integers(0, 9, (b, s)).astype(np.int64), f32(b, s * 8)])
    return m, ds


@case
def dyn_flatten_and_gemm():
    # [N, 3, 4] -> Reshape(Concat(Shape(x)[0:1], [-1])) -> [N, 12] -> Gemm.
    n = [
        h.make_node("Shape", ["x"], ["shp"]),
        const("st", [0]), const("en", [1]), const("m1", [-1]),
        h.make_node("Slice", ["shp", "st", "en"], ["n1"]),
        h.make_node("Concat", ["n1", "m1"], ["t"], axis=0),
        h.make_node("Reshape", ["x", "t"], ["x2"]),
        h.make_node("Gemm", ["x2", "w", "bias"], ["y"], transB=1),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["N", 3, 4])], [vi("y", TP.FLOAT, None)],
              [init("w", f32(5, 12)), init("bias", f32(5))])
    return m, [[f32(4, 3, 4)], [f32(1, 3, 4)]]


@case
def dyn_dim_as_data():
    # mean over the sequence written as ReduceSum / Cast(Shape(x)[1]): the dim's value is data.
    n = [
        h.make_node("Shape", ["x"], ["shp"]),
        const("i1", 1),
        h.make_node("Gather", ["shp", "i1"], ["s"], axis=0),
        h.make_node("Cast", ["s"], ["sf"], to=TP.FLOAT),
        const("ax", [1]),
        h.make_node("ReduceSum", ["x", "ax"], ["tot"], keepdims=0),
        h.make_node("Div", ["tot", "sf"], ["y"]),
        h.make_node("Size", ["x"], ["sz"]),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["b", "s", 6])],
              [vi("y", TP.FLOAT, None), vi("sz", TP.INT64, None)])
    return m, [[f32(2, 5, 6)], [f32(3, 2, 6)]]


@case
def dyn_slice_and_expand():
    # x[:, : s - 1] with s = Shape(x)[1]; a bias Expanded to Shape(x).
    n = [
        h.make_node("Shape", ["x"], ["shp"]),
        const("i1", [1]), const("one", [1]), const("zero", [0]),
        h.make_node("Gather", ["shp", "i1"], ["s"], axis=0),
        h.make_node("Sub", ["s", "one"], ["e"]),
        h.make_node("Slice", ["x", "zero", "e", "i1"], ["xs"]),
        h.make_node("Expand", ["bias", "shp"], ["be"]),
        h.make_node("Add", ["x", "be"], ["y2"]),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["b", "s", 4])],
              [vi("xs", TP.FLOAT, None), vi("y2", TP.FLOAT, None)], [init("bias", f32(1, 1, 4))])
    return m, [[f32(2, 5, 4)], [f32(1, 3, 4)]]


@case
def dyn_constant_of_shape():
    # ConstantOfShape(Shape(x)) as data (a default mask of ones, as exporters write it).
    n = [
        h.make_node("Shape", ["x"], ["shp"]),
        h.make_node("ConstantOfShape", ["shp"], ["ones"],
                    value=h.make_tensor("v", TP.FLOAT, [1], [2.5])),
        h.make_node("Mul", ["x", "ones"], ["y"]),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["b", "s"])], [vi("y", TP.FLOAT, None)])
    return m, [[f32(2, 3)], [f32(4, 1)]]


@case
def dyn_conv_longer_than_probe():
    # A kernel longer than the smallest probe size: the importer retries with larger probes. The
    # flattening reshape takes the batch from Shape(conv output); the slice end is INT64_MAX.
    n = [
        h.make_node("Conv", ["x", "w"], ["c"], strides=[100]),
        h.make_node("Shape", ["c"], ["shp"]),
        const("i0", [0]), const("m1", [-1]), const("one", [1]), const("big", [2**63 - 1]),
        const("ax2", [2]),
        h.make_node("Slice", ["c", "one", "big", "ax2"], ["cs"]),
        h.make_node("Gather", ["shp", "i0"], ["b"], axis=0),
        h.make_node("Concat", ["b", "m1"], ["t"], axis=0),
        h.make_node("Reshape", ["cs", "t"], ["y"]),
    ]
    m = model(n, [vi("x", TP.FLOAT, ["b", 1, "len"])], [vi("y", TP.FLOAT, None)],
              [init("w", f32(4, 1, 300) * 0.05)])
    return m, [[f32(2, 1, 1000)], [f32(1, 1, 700)]]


# --- quantization ----------------------------------------------------------------------------


def q_model(node, x_elem, x_shape, params, out_elem, opset):
    return model([node], [vi("x", x_elem, x_shape)], [vi("y", out_elem, None)],
                 [init(k, v) for k, v in params], opset=opset)


@case
def dequantize_linear():
    out = []
    # per tensor u8 with zero point
    node = h.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
    out.append(("pt_u8", q_model(node, TP.UINT8, [3, 5], [("s", np.float32(0.05)),
                                                          ("z", np.uint8(128))], TP.FLOAT, 13),
                [[RNG.integers(0, 256, (3, 5)).astype(np.uint8)]]))
    # per axis i8, axis 0 and axis 1 (no zero point)
    for ax in (0, 1):
        node = h.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=ax)
        s = (RNG.random((3, 5)[ax]) * 0.1 + 0.01).astype(np.float32)
        out.append((f"axis{ax}_i8", q_model(node, TP.INT8, [3, 5], [("s", s)], TP.FLOAT, 13),
                    [[RNG.integers(-128, 128, (3, 5)).astype(np.int8)]]))
    # blocked (opset 21): u8 and i4 with zero points, blocks of 4 along axis 1 (last block short).
    # The i4 data is an initializer (onnxruntime's Python API takes no int4 arrays), added to a
    # float input.
    for elem, dt, lo, hi in ((TP.UINT8, np.uint8, 0, 256), (TP.INT4, None, -8, 8)):
        s = (RNG.random((4, 3)) * 0.1 + 0.01).astype(np.float32)
        zv = RNG.integers(lo, hi, (4, 3))
        xv = RNG.integers(lo, hi, (4, 10))
        if dt is None:
            z = h.make_tensor("z", TP.INT4, [4, 3], zv.flatten().tolist())
            inits = [init("s", s), z, h.make_tensor("xq", TP.INT4, [4, 10], xv.flatten().tolist())]
            nodes = [h.make_node("DequantizeLinear", ["xq", "s", "z"], ["dq"], axis=1,
                                 block_size=4), h.make_node("Add", ["dq", "x"], ["y"])]
            ins, data = [vi("x", TP.FLOAT, [4, 10])], [[f32(4, 10)]]
        else:
            inits = [init("s", s), init("z", zv.astype(dt))]
            nodes = [h.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=4)]
            ins, data = [vi("x", elem, [4, 10])], [[xv.astype(dt)]]
        g = h.make_graph(nodes, "g", ins, [vi("y", TP.FLOAT, None)], initializer=inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", 21)])
        m.ir_version = 10
        out.append((f"blocked_{'u8' if dt else 'i4'}", m, data))
    return out


@case
def quantize_linear():
    out = []
    node = h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    out.append(("pt_u8", q_model(node, TP.FLOAT, [4, 6], [("s", np.float32(0.02)),
                                                          ("z", np.uint8(120))], TP.UINT8, 13),
                [[f32(4, 6)], [f32(4, 6) * 10]]))  # the second saturates
    node = h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1)
    s = (RNG.random(6) * 0.05 + 0.005).astype(np.float32)
    out.append(("axis1_i8", q_model(node, TP.FLOAT, [4, 6], [("s", s),
                                                             ("z", np.zeros(6, np.int8))],
                                    TP.INT8, 13), [[f32(4, 6)]]))
    node = h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0, block_size=2)
    s = (RNG.random((3, 6)) * 0.05 + 0.01).astype(np.float32)
    z = RNG.integers(0, 256, (3, 6)).astype(np.uint8)
    out.append(("blocked_u8", q_model(node, TP.FLOAT, [5, 6], [("s", s), ("z", z)],
                                      TP.UINT8, 21), [[f32(5, 6)]]))
    return out


@case
def dq_matmul():
    # Weights stored int8 per output column and dequantized in the graph (as quantization tools
    # write them): Loom fuses dequantize -> matmul into quantized_matmul.
    wq = RNG.integers(-127, 128, (32, 16)).astype(np.int8)
    s = (RNG.random(16) * 0.02 + 0.001).astype(np.float32)
    n = [h.make_node("DequantizeLinear", ["wq", "s"], ["w"], axis=1),
         h.make_node("MatMul", ["x", "w"], ["y"])]
    m = model(n, [vi("x", TP.FLOAT, ["batch", 32])], [vi("y", TP.FLOAT, None)],
              [init("wq", wq), init("s", s)], opset=13)
    return m, [[f32(3, 32)], [f32(1, 32)]]


@case
def dynamic_quantize_linear():
    n = [h.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])]
    m = model(n, [vi("x", TP.FLOAT, [5, 7])],
              [vi("y", TP.UINT8, None), vi("s", TP.FLOAT, None), vi("z", TP.UINT8, None)],
              opset=13)
    return m, [[f32(5, 7)], [np.abs(f32(5, 7))]]


@case
def matmul_integer():
    n = [h.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])]
    m = model(n, [vi("a", TP.UINT8, [4, 9])], [vi("y", TP.INT32, None)],
              [init("b", RNG.integers(0, 256, (9, 5)).astype(np.uint8)),
               init("az", np.uint8(100)),
               init("bz", RNG.integers(0, 256, 5).astype(np.uint8))], opset=13)
    return m, [[RNG.integers(0, 256, (4, 9)).astype(np.uint8)]]


@case
def qlinear_matmul():
    n = [h.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])]
    m = model(n, [vi("a", TP.UINT8, [3, 8])], [vi("y", TP.UINT8, None)],
              [init("as", np.float32(0.02)), init("az", np.uint8(110)),
               init("b", RNG.integers(0, 256, (8, 4)).astype(np.uint8)),
               init("bs", np.float32(0.01)), init("bz", np.uint8(130)),
               init("ys", np.float32(0.05)), init("yz", np.uint8(128))], opset=13)
    return m, [[RNG.integers(0, 256, (3, 8)).astype(np.uint8)]]


def nbits_model(K, N, bits, block, zero_points, bias):
    nb = (K + block - 1) // block
    blob = block * bits // 8
    q = RNG.integers(0, 2**bits, (N, nb * block))
    q[:, K:] = 0
    if bits == 4:
        packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    else:
        packed = q.astype(np.uint8)
    inits = [init("B", packed.reshape(N, nb, blob)),
             init("scales", (RNG.random(N * nb) * 0.05 + 0.01).astype(np.float32))]
    ins = ["A", "B", "scales"]
    if zero_points:
        z = RNG.integers(0, 2**bits, (N, nb + (nb % 2 if bits == 4 else 0)))
        zp = (z[:, 0::2] | (z[:, 1::2] << 4)) if bits == 4 else z
        inits.append(init("zp", zp.astype(np.uint8).reshape(-1)))
        ins.append("zp")
    if bias:
        ins += ["", "bias"] if zero_points else ["", "", "bias"]
        inits.append(init("bias", f32(N)))
    n = [h.make_node("MatMulNBits", ins, ["y"], domain="com.microsoft", K=K, N=N, bits=bits,
                     block_size=block)]
    return model(n, [vi("A", TP.FLOAT, ["batch", K])], [vi("y", TP.FLOAT, None)], inits,
                 opset=17, ms=True)


@case
def matmul_nbits():
    out = []
    for name, K, N, bits, block, zp, bias in (("q4_zp", 64, 24, 4, 32, True, False),
                                             ("q4_nozp_bias", 64, 16, 4, 16, False, True),
                                             ("q4_short_block", 48, 8, 4, 32, True, False),
                                             ("q8_zp", 64, 8, 8, 32, True, True)):
        m = nbits_model(K, N, bits, block, zp, bias)
        out.append((name, m, [[f32(3, K)], [f32(1, K)]]))
    return out


@case
def spectral():
    out = []
    # complex input, padded to dft_length 12, inverse; real input, onesided (opset 17: axis attr)
    n = [const("L", 12), h.make_node("DFT", ["x", "L"], ["y"], axis=1, inverse=1)]
    out.append(("dft_complex_inverse", model(n, [vi("x", TP.FLOAT, [2, 9, 2])],
                                             [vi("y", TP.FLOAT, None)]), [[f32(2, 9, 2)]]))
    n = [h.make_node("DFT", ["x"], ["y"], axis=1, onesided=1)]
    out.append(("dft_real_onesided", model(n, [vi("x", TP.FLOAT, [3, 16, 1])],
                                           [vi("y", TP.FLOAT, None)]), [[f32(3, 16, 1)]]))
    n = [const("step", 8, np.int64),
         h.make_node("HannWindow", ["size"], ["w"]),
         h.make_node("STFT", ["x", "step", "w"], ["y"])]
    m = model(n + [], [vi("x", TP.FLOAT, [2, 100, 1])], [vi("y", TP.FLOAT, None)],
              [init("size", np.int64(32))])
    out.append(("stft_hann", m, [[f32(2, 100, 1)]]))
    return out


@case
def if_constant_condition():
    then_g = h.make_graph([h.make_node("Mul", ["x", "two"], ["t"])], "then", [],
                          [vi("t", TP.FLOAT, None)], initializer=[init("two", np.float32(2))])
    else_g = h.make_graph([h.make_node("Neg", ["x"], ["e"])], "else", [],
                          [vi("e", TP.FLOAT, None)])
    n = [const("c", True, np.bool_),
         h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    m = model(n, [vi("x", TP.FLOAT, [2, 3])], [vi("y", TP.FLOAT, None)], opset=13)
    return m, [[f32(2, 3)]]


def write(out, name, m, datasets, tol):
    # (no onnx.checker: outputs are declared without shapes, which ORT accepts)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    # Graph optimizations off: ORT would otherwise rewrite DequantizeLinear -> MatMul into
    # MatMulIntegerToFloat, quantizing the activations (an approximation of the model).
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for k, inputs in enumerate(datasets):
        ds = os.path.join(d, f"test_data_set_{k}")
        os.makedirs(ds, exist_ok=True)
        outs = sess.run(None, dict(zip(names, inputs)))
        for kind, vals in (("input", inputs), ("output", outs)):
            for j, v in enumerate(vals):
                v = np.asarray(v)
                t = numpy_helper.from_array(v, f"{kind}_{j}")
                with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(t.SerializeToString())
    with open(os.path.join(d, "tolerance.json"), "w") as f:
        json.dump(tol, f)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    count = 0
    for fn in CASES:
        r = fn()
        items = r if isinstance(r, list) else [("", r[0], r[1])]
        for sub, m, ds in items:
            name = fn.__name__ + (f"_{sub}" if sub else "")
            write(out, name, m, ds, {"rtol": 1e-4, "atol": 1e-5})
            count += 1
    print(f"onnx_ort_cases: {count} cases written to {out} (onnxruntime {ort.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
