#!/usr/bin/env python3
"""Writes the ONNX backend node test suite to a directory, in the layout of onnx's
backend/test/data/node (<case>/model.onnx, <case>/test_data_set_N/{input,output}_K.pb), plus
<case>/tolerance.json with the case's rtol/atol.

Recent `onnx` wheels no longer ship the generated node data, only the Python cases that produce it
(onnx/backend/test/case/node/*.py, with numpy reference outputs); this script runs them. Cases whose
inputs are not plain tensors (sequences, maps, optionals) are skipped: Loom's importer only takes
tensors.

usage: onnx_node_suite.py OUTPUT_DIR
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases


def main() -> int:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    warnings.simplefilter("ignore")
    written = 0
    for case in node_cases.collect_testcases():
        if case.model is None or not case.data_sets:
            continue
        g = case.model.graph
        if not all(v.type.HasField("tensor_type") for v in list(g.input) + list(g.output)):
            continue
        d = os.path.join(out, case.name)
        os.makedirs(d, exist_ok=True)
        ok = True
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            for kind, values, infos in (("input", inputs, g.input), ("output", outputs, g.output)):
                for j, v in enumerate(values):
                    if not isinstance(v, (np.ndarray, np.generic)):
                        ok = False
                        break
                    t = numpy_helper.from_array(np.asarray(v), infos[j].name)
                    with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(t.SerializeToString())
        if not ok:
            continue
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        with open(os.path.join(d, "tolerance.json"), "w") as f:
            json.dump({"rtol": case.rtol, "atol": case.atol}, f)
        written += 1
    print(f"onnx {onnx.__version__}: wrote {written} node test cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
