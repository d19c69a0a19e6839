#include "ir/graph.h"

#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::ir {

int GraphData::find_variable(const std::string& name) const {
  for (size_t i = 0; i < variables.size(); ++i)
    if (variables[i].name == name) return static_cast<int>(i);
  return -1;
}

int GraphData::find_placeholder(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == op::placeholder && attrs_as<PlaceholderAttrs>(*nodes[i].attrs).name == name)
      return static_cast<int>(i);
  return -1;
}

std::vector<Value> add_node(GraphData& g, OpId op_id, std::vector<Value> inputs, AttrsPtr attrs,
                            std::string name) {
  const OpInfo& info = OpRegistry::get().info(op_id);
  if (!attrs) attrs = info.default_attrs();
  std::vector<TensorType> in_types;
  std::vector<const NDArray*> values;
  bool any_value = false;
  for (const Value& v : inputs) {
    LOOM_CHECK(v.valid() && v.node < static_cast<int32_t>(g.nodes.size()) &&
                   v.index < static_cast<int32_t>(g.node(v).outputs.size()),
               "[", info.name, "] input refers to a value that is not in this graph");
    in_types.push_back(g.type(v));
    const Node& src = g.node(v);
    if (src.op == op::constant) {
      values.push_back(&attrs_as<ConstantAttrs>(*src.attrs).value);
      any_value = true;
    } else {
      values.push_back(nullptr);
    }
  }
  if (info.arity >= 0 && static_cast<int>(inputs.size()) != info.arity)
    fail("[", info.name, "] takes ", info.arity, " inputs, got ", inputs.size());
  InferContext ctx{
      info, *attrs, in_types,
      any_value ? std::span<const NDArray* const>(values) : std::span<const NDArray* const>()};
  Node n;
  n.op = op_id;
  n.outputs = info.infer(ctx);
  n.name = name.empty() ? info.name + "_" + std::to_string(g.nodes.size()) : std::move(name);
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  g.nodes.push_back(std::move(n));
  std::vector<Value> outs;
  for (size_t i = 0; i < g.nodes.back().outputs.size(); ++i)
    outs.push_back({static_cast<int32_t>(g.nodes.size() - 1), static_cast<int32_t>(i)});
  return outs;
}

}  // namespace loom::ir
