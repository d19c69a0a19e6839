// The graph IR: nodes with typed attributes, values with tensor types, variables.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "loom/attrs.h"
#include "loom/shape.h"

namespace loom::ir {

using OpId = uint16_t;
namespace op {
enum : OpId {
#define LOOM_OP(name, fusion, arity, attrs) name,
#include "ops/ops.def"
#undef LOOM_OP
  kNumBuiltin
};
}  // namespace op

// Output `index` of node `node`.
struct Value {
  int32_t node = -1;
  int32_t index = 0;
  bool valid() const { return node >= 0; }
  bool operator==(const Value&) const = default;
  auto operator<=>(const Value&) const = default;
};

struct Node {
  OpId op = 0;
  std::string name;
  std::vector<Value> inputs;
  AttrsPtr attrs;
  std::vector<TensorType> outputs;
};

struct VariableInfo {
  std::string name;
  NDArray initial;
  TensorType type() const { return initial.type(); }
};

// Nodes are kept in program order: node i only uses values of nodes < i, and reads and assigns
// of a variable happen in node order. Passes preserve that order.
struct GraphData {
  std::vector<Node> nodes;
  std::vector<VariableInfo> variables;

  const TensorType& type(Value v) const {
    return nodes[static_cast<size_t>(v.node)].outputs[static_cast<size_t>(v.index)];
  }
  const Node& node(Value v) const { return nodes[static_cast<size_t>(v.node)]; }
  int find_variable(const std::string& name) const;     // -1 if absent
  int find_placeholder(const std::string& name) const;  // node index or -1
};

// Appends a node after running its type inference; throws loom::Error naming the op and its
// inputs' types when the inputs do not fit. Returns the node's outputs.
std::vector<Value> add_node(GraphData& g, OpId op, std::vector<Value> inputs, AttrsPtr attrs,
                            std::string name = "");

// IR text (tests/passes/golden): print, and parse back into a graph + outputs.
std::string print_graph(const GraphData& g, const std::vector<Value>& outputs);
GraphData parse_graph(const std::string& text, std::vector<Value>* outputs);

}  // namespace loom::ir
