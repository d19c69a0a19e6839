// io/onnx_import.h — ONNX models (libonnx's protobuf classes, Debian libonnx-dev) to Loom graphs.
//
// Each ONNX node is converted by a table entry chosen by op type and the model's opset (the
// entry with the newest `since` version not above it). Initializers become constants (external
// data files included), dim_param / unknown dims become dynamic dims. Anything not covered —
// an op, an attribute value, a dtype, a non-constant shape input — is a loom::Error
// "[onnx] node 'name' (OpType): ...". See docs/ONNX.md for the coverage.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "loom/graph.h"
#include "loom/ndarray.h"

namespace loom::io {

struct OnnxModel {
  Graph graph;
  std::vector<Tensor> outputs;            // in the model's output order
  std::vector<std::string> output_names;  // ONNX names (the producing nodes are renamed to them)
  std::vector<std::string> input_names;
  int64_t opset = 0;  // of the default ("" / ai.onnx) domain
};

struct OnnxImportOptions {
  // Graph inputs to bind to known values: they become constants (e.g. the `shape` input of a
  // Reshape that Loom needs at import time; the node test suite feeds those as inputs).
  std::vector<std::pair<std::string, NDArray>> constant_inputs;
  // Called after each node with (nodes done, nodes in total): `loom convert`'s progress bar.
  std::function<void(size_t, size_t)> progress;
};

OnnxModel import_onnx(const std::string& path, const OnnxImportOptions& options = {});
OnnxModel import_onnx_bytes(const std::string& bytes, const std::string& name,
                            const std::string& base_dir = ".",
                            const OnnxImportOptions& options = {});

// A serialized onnx.TensorProto file (the node test suite's input_N.pb / output_N.pb).
NDArray read_onnx_tensor(const std::string& path);

// ONNX op types the importer converts (for reports).
std::vector<std::string> onnx_supported_ops();

}  // namespace loom::io
