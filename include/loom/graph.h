// loom/graph.h — building graphs: placeholders, constants, variables, and tensor handles.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "loom/ndarray.h"
#include "loom/shape.h"

namespace loom {

namespace ir {
struct GraphData;
}
class Executable;
struct CompileOptions;
class Graph;

// A handle to one output of one op in a graph. Cheap to copy; keeps its graph alive.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<ir::GraphData> g, int32_t node, int32_t index)
      : g_(std::move(g)), node_(node), index_(index) {}

  bool defined() const { return g_ != nullptr; }
  TensorType type() const;
  DType dtype() const { return type().dtype; }
  Shape shape() const { return type().shape; }
  int rank() const { return shape().rank(); }
  // Name of the op that produced this tensor.
  std::string name() const;
  Graph graph() const;

  const std::shared_ptr<ir::GraphData>& graph_data() const { return g_; }
  int32_t node() const { return node_; }
  int32_t index() const { return index_; }

 private:
  std::shared_ptr<ir::GraphData> g_;
  int32_t node_ = -1;
  int32_t index_ = 0;
};

// A named, persistent tensor owned by the executable: its value survives across runs.
class Variable {
 public:
  Variable() = default;
  Variable(std::shared_ptr<ir::GraphData> g, std::string name)
      : g_(std::move(g)), name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  TensorType type() const;
  const std::shared_ptr<ir::GraphData>& graph_data() const { return g_; }

 private:
  std::shared_ptr<ir::GraphData> g_;
  std::string name_;
};

class Graph {
 public:
  Graph();
  explicit Graph(std::shared_ptr<ir::GraphData> data) : g_(std::move(data)) {}

  // An input fed at run time. Dims of -1 are dynamic: resolved on every run.
  Tensor placeholder(Shape shape, DType dtype, const std::string& name);
  // A constant (the array is shared, not copied; do not modify it afterwards).
  Tensor constant(const NDArray& value, const std::string& name = "");
  // A rank-0 constant.
  Tensor scalar(double value, DType dtype = DType::f32);
  // A variable with a static shape and an initial value. Names are unique per graph.
  Variable variable(const NDArray& initial, const std::string& name);
  // The variable's value at this point of the graph (zero-copy where the runtime can).
  Tensor read(const Variable& v);
  // Writes `value` to the variable at this point of the graph. Assigns always run: there is no
  // need to list them as compile targets (unlike MPSGraph's targetOperations).
  void assign(const Variable& v, const Tensor& value);

  // Verifies, optimises and lowers the graph for options.device.
  Executable compile(const std::vector<Tensor>& outputs, const CompileOptions& options) const;
  Executable compile(const std::vector<Tensor>& outputs) const;

  // IR text of the graph (with the given outputs marked).
  std::string to_text(const std::vector<Tensor>& outputs = {}) const;
  size_t num_ops() const;
  const std::shared_ptr<ir::GraphData>& data() const { return g_; }

 private:
  std::shared_ptr<ir::GraphData> g_;
};

}  // namespace loom
