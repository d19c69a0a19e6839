// The `stitched` op: type inference and the parsed-program cache (see stitched.h).
#include "ops/stitched.h"

#include <mutex>
#include <unordered_map>

#include "ops/infer_util.h"

namespace loom::ops {

bool stitchable_dtype(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::boolean;
}

std::string StitchProgram::summary() const {
  std::string s;
  for (const auto& in : code) {
    if (!s.empty()) s += ", ";
    s += ir::OpRegistry::get().info(in.op).name;
  }
  return s;
}

namespace {

std::shared_ptr<const StitchProgram> parse_uncached(const std::string& text) {
  std::vector<ir::Value> outs;
  ir::GraphData g;
  try {
    g = ir::parse_graph(text, &outs);
  } catch (const Error& e) {
    fail("[stitched] malformed program: ", e.what());
  }
  LOOM_CHECK(outs.size() == 1, "[stitched] the program must return exactly one value, not ",
             outs.size());
  auto p = std::make_shared<StitchProgram>();
  std::vector<int> slot(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const ir::OpInfo& info = ir::OpRegistry::get().info(n.op);
    if (n.op == ir::op::placeholder) {
      LOOM_CHECK(p->code.empty(), "[stitched] placeholders must come before the member ops");
      const auto& a = attrs_as<PlaceholderAttrs>(*n.attrs);
      LOOM_CHECK(a.name == "in" + std::to_string(p->inputs.size()), "[stitched] placeholder '",
                 a.name, "' is out of order (expected in", p->inputs.size(), ")");
      LOOM_CHECK(stitchable_dtype(a.dtype), "[stitched] input dtype ", dtype_name(a.dtype),
                 " cannot be stitched");
      slot[i] = static_cast<int>(p->inputs.size());
      p->inputs.push_back(a.dtype);
      continue;
    }
    LOOM_CHECK(info.fusion == ir::FusionClass::elementwise && n.outputs.size() == 1,
               "[stitched] op '", info.name, "' cannot be a member of a stitched region");
    LOOM_CHECK(stitchable_dtype(n.outputs[0].dtype), "[stitched] op '", info.name, "' produces ",
               dtype_name(n.outputs[0].dtype), ", which cannot be stitched");
    StitchInstr in{n.op, n.attrs, {}, n.outputs[0].dtype};
    for (const ir::Value& v : n.inputs) in.args.push_back(slot[static_cast<size_t>(v.node)]);
    slot[i] = -2;  // fixed below, once the number of inputs is known
    p->code.push_back(std::move(in));
  }
  LOOM_CHECK(!p->code.empty(), "[stitched] the program has no member ops");
  // Instruction j is operand num_inputs + j.
  std::vector<int> instr_of(g.nodes.size(), -1);
  int j = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (slot[i] == -2) instr_of[i] = j++;
  size_t k = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (slot[i] != -2) continue;
    auto& code = p->code[k++];
    const auto& n = g.nodes[i];
    for (size_t a = 0; a < n.inputs.size(); ++a) {
      auto src = static_cast<size_t>(n.inputs[a].node);
      code.args[a] = slot[src] >= 0 ? slot[src] : p->num_inputs() + instr_of[src];
    }
  }
  LOOM_CHECK(outs[0].node == static_cast<int>(g.nodes.size()) - 1 && slot.back() == -2,
             "[stitched] the program must return its last op");
  return p;
}

}  // namespace

std::shared_ptr<const StitchProgram> parse_stitch_program(const std::string& text) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const StitchProgram>> cache;
  {
    std::lock_guard lock(mutex);
    auto it = cache.find(text);
    if (it != cache.end()) return it->second;
  }
  auto p = parse_uncached(text);
  std::lock_guard lock(mutex);
  if (cache.size() > 4096) cache.clear();  // bounded: programs of long-gone executables
  cache.emplace(text, p);
  return p;
}

}  // namespace loom::ops

namespace loom::ir {

void register_stitched_ops(OpRegistry& r) {
  r.mutable_info(op::stitched).infer = [](const InferContext& ctx) {
    auto p = ops::parse_stitch_program(ctx.attrs_as<StitchedAttrs>().program);
    if (static_cast<size_t>(p->num_inputs()) != ctx.inputs.size())
      ctx.fail("the program takes ", p->num_inputs(), " inputs, the node has ", ctx.inputs.size());
    Shape s = ctx.inputs.empty() ? Shape{} : ctx.inputs[0].shape;
    for (size_t i = 0; i < ctx.inputs.size(); ++i) {
      if (ctx.inputs[i].dtype != p->inputs[i])
        ctx.fail("input ", i, " is ", dtype_name(ctx.inputs[i].dtype), ", the program expects ",
                 dtype_name(p->inputs[i]));
      s = ops::broadcast_shapes(ctx, s, ctx.inputs[i].shape);
    }
    return std::vector<TensorType>{{p->output_dtype(), s}};
  };
}

}  // namespace loom::ir
