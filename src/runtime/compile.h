// The compile driver's entry point below the public Graph API: an ir::GraphData (a copy the
// driver may change) plus its outputs to an Executable. Used by Graph::compile and by package
// loading, which hands over an already optimised graph and its pass log.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"
#include "loom/executable.h"

namespace loom {

// Verifies `graph`, runs the optimisation pipeline when `optimize` and
// options.optimization_level > 0, and lowers it for options.device. `log` is the pass log so far
// (the passes append to it).
Executable compile_graph_data(ir::GraphData graph, std::vector<ir::Value> outputs,
                              const CompileOptions& options, std::vector<std::string> log,
                              bool optimize);

// Constant folding's evaluator: a view op's value is its input reshaped (copied), any other op
// runs its reference kernel (or its host kernel). Also used by `loom view` to replay the passes.
std::vector<NDArray> evaluate_on_reference(const ir::Node& n, const std::vector<NDArray>& in);

}  // namespace loom
