// The compile driver: verify -> optimisation passes -> lower for the device -> Executable.
#include "runtime/compile.h"

#include "ir/op_registry.h"
#include "loom/graph.h"
#include "passes/pass.h"
#include "runtime/executable_impl.h"

namespace loom {
namespace {

// Checks the invariants every pass relies on; a failure here is a bug in Loom or in a pass.
void verify(const ir::GraphData& g, const std::vector<ir::Value>& outputs) {
  const auto& reg = ir::OpRegistry::get();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    LOOM_CHECK(n.op < reg.size(), "[verify] node ", i, " has unknown op id ", n.op);
    const auto& info = reg.info(n.op);
    for (const auto& v : n.inputs)
      LOOM_CHECK(v.node >= 0 && static_cast<size_t>(v.node) < i &&
                     static_cast<size_t>(v.index) < g.node(v).outputs.size(),
                 "[verify] ", info.name, " (", n.name,
                 ") uses a value that is not defined before it");
    if (n.op == ir::op::read || n.op == ir::op::assign) {
      const auto& name = attrs_as<VariableRefAttrs>(*n.attrs).variable;
      LOOM_CHECK(g.find_variable(name) >= 0, "[verify] ", info.name, " of unknown variable '", name,
                 "'");
    }
  }
  for (const auto& v : outputs)
    LOOM_CHECK(v.node >= 0 && static_cast<size_t>(v.node) < g.nodes.size() &&
                   static_cast<size_t>(v.index) < g.node(v).outputs.size(),
               "[verify] an output is not a value of this graph");
}

}  // namespace

std::vector<NDArray> evaluate_on_reference(const ir::Node& n, const std::vector<NDArray>& in) {
  const auto& info = ir::OpRegistry::get().info(n.op);
  std::vector<NDArray> out;
  if (info.is_view()) {  // views have no kernel: their value is the input, reshaped
    out.push_back(in[0].reshape(n.outputs[0].shape).clone());
    return out;
  }
  const KernelFn* k = backends::reference_kernels().find(n.op);
  if (!k && info.host_kernel) k = &info.host_kernel;
  LOOM_CHECK(k, "[constant_folding] no reference kernel for ", info.name);
  for (const auto& t : n.outputs) out.push_back(NDArray::empty(t.dtype, t.shape));
  KernelContext ctx{in, out, n.attrs.get(), nullptr};
  (*k)(ctx);
  return out;
}

Executable Graph::compile(const std::vector<Tensor>& outputs) const {
  return compile(outputs, CompileOptions{});
}

Executable Graph::compile(const std::vector<Tensor>& outputs, const CompileOptions& options) const {
  LOOM_CHECK(options.optimization_level == 0 || options.optimization_level == 1,
             "[compile] optimization_level must be 0 or 1, got ", options.optimization_level);
  std::vector<ir::Value> outs;
  for (const auto& t : outputs) {
    LOOM_CHECK(t.defined(), "[compile] output ", outs.size(), " is an undefined tensor");
    LOOM_CHECK(t.graph_data() == g_, "[compile] output ", outs.size(), " belongs to another graph");
    outs.push_back({t.node(), t.index()});
  }
  // Passes work on a copy; the user's graph stays as built.
  return compile_graph_data(*g_, std::move(outs), options, {}, /*optimize=*/true);
}

Executable compile_graph_data(ir::GraphData g, std::vector<ir::Value> outs,
                              const CompileOptions& options, std::vector<std::string> log,
                              bool optimize) {
  LOOM_CHECK(options.optimization_level == 0 || options.optimization_level == 1,
             "[compile] optimization_level must be 0 or 1, got ", options.optimization_level);
  verify(g, outs);
  if (optimize && options.optimization_level > 0) {
    backends::Backend& backend = backends::backend_for(options.device, options.num_threads);
    passes::PassContext ctx{g, outs, log, options, evaluate_on_reference, [&backend](ir::OpId op) {
                              return backend.kernel(op) != nullptr;
                            }};
    passes::run_pipeline(ctx);
    verify(g, outs);
  }
  return Executable(
      std::make_shared<ExecutableImpl>(std::move(g), std::move(outs), options, std::move(log)));
}

}  // namespace loom
