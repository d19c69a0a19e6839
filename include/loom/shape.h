// loom/shape.h — shapes with dynamic dimensions, and tensor types.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "loom/dtype.h"

namespace loom {

// A dimension of -1 is dynamic: unknown when the graph is built, resolved on every run.
inline constexpr int64_t kDynamic = -1;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  // Negative axes count from the end; throws if out of range.
  int64_t dim(int axis) const;
  const std::vector<int64_t>& dims() const { return dims_; }
  std::vector<int64_t>& dims() { return dims_; }
  bool is_static() const;
  // Number of elements; throws if the shape is not static.
  int64_t numel() const;
  std::string to_string() const;  // "[2,?,4]"

  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }
  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

// Normalises a possibly negative axis against `rank`; throws naming `what` when out of range.
int normalize_axis(int64_t axis, int rank, const char* what = "axis");

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  std::string to_string() const;  // "f32[2,?,4]"
  bool operator==(const TensorType&) const = default;
};

}  // namespace loom
