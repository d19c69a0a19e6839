// Pass infrastructure: each pass is a function over the graph that records what it changed.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "loom/executable.h"

namespace loom::passes {

struct PassContext {
  ir::GraphData& graph;
  std::vector<ir::Value>& outputs;  // the compile targets; passes keep them valid
  std::vector<std::string>& log;
  const CompileOptions& options;
  // Evaluates one node on host arrays (constant folding); provided by the compile driver.
  std::function<std::vector<NDArray>(const ir::Node&, const std::vector<NDArray>&)> evaluate;
  // Whether the target device has a kernel for an op (passes that introduce ops ask first).
  std::function<bool(ir::OpId)> device_has_kernel;

  void note(const char* pass, const std::string& message) {
    log.push_back(std::string("[") + pass + "] " + message);
  }
};

struct PassInfo {
  const char* name;
  const char* why;  // why it sits at this slot of the pipeline
  void (*run)(PassContext&);
};

// The optimisation pipeline, in order (src/passes/pipeline.cpp).
const std::vector<PassInfo>& pipeline();
// Runs the pipeline, skipping options.disabled_passes; unknown names are an error.
void run_pipeline(PassContext& ctx);

// --- graph surgery shared by passes ---------------------------------------------------------
// Rewrites every use of `from` (node inputs and outputs) to `to`.
void replace_uses(PassContext& ctx, const std::vector<std::pair<ir::Value, ir::Value>>& map);
// Uses of each node's values: node inputs, and the compile targets (one each).
std::vector<int> use_counts(const PassContext& ctx);
// Whether a fusion pass that makes op `fused` may run: not on the reference device (the oracle
// runs op by op), nor where the device has no kernel for `fused` (noted under `pass`).
bool fusion_allowed(PassContext& ctx, const char* pass, ir::OpId fused);
// Removes nodes whose keep[i] is false, renumbering the rest (order preserved). Removed nodes
// must have no remaining uses.
void compact(PassContext& ctx, const std::vector<bool>& keep);
// Fusion passes that move a pair's results to one node: rewrites each use of a key of `moved` (a
// value of the graph before the pass) to its value, looked up once (unlike replace_uses, which
// would follow a chain through a slot that a fused node took over), then compacts `keep`.
void remap_and_compact(PassContext& ctx, const std::map<ir::Value, ir::Value>& moved,
                       const std::vector<bool>& keep);
// Inserts `nodes` (whose inputs refer to nodes before `index`) before node `index`, renumbering
// every later use.
void insert_before(PassContext& ctx, size_t index, std::vector<ir::Node> nodes);

void dead_code_elimination(PassContext& ctx);
void common_subexpression_elimination(PassContext& ctx);
void constant_folding(PassContext& ctx);
void attention_pattern(PassContext& ctx);
void inplace_variable_update(PassContext& ctx);
void quantized_matmul_fusion(PassContext& ctx);
void merge_parallel_matmuls(PassContext& ctx);
void fuse_rope_into_write_slice(PassContext& ctx);
void fuse_kv_cache_write(PassContext& ctx);
void fuse_rope_write_kv_into_sdpa(PassContext& ctx);
void fuse_add_rms_norm(PassContext& ctx);
void fuse_add_rms_norm_into_quantized_matmul(PassContext& ctx);
void fuse_swiglu_into_quantized_matmul(PassContext& ctx);
void stitch(PassContext& ctx);

}  // namespace loom::passes
