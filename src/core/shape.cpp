#include "loom/shape.h"

#include "loom/device.h"
#include "loom/error.h"

namespace loom {

int64_t Shape::dim(int axis) const { return dims_[normalize_axis(axis, rank())]; }

bool Shape::is_static() const {
  for (int64_t d : dims_)
    if (d < 0) return false;
  return true;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) {
    LOOM_CHECK(d >= 0, "[shape] numel of dynamic shape ", to_string());
    n *= d;
  }
  return n;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ",";
    s += dims_[i] < 0 ? std::string("?") : std::to_string(dims_[i]);
  }
  return s + "]";
}

int normalize_axis(int64_t axis, int rank, const char* what) {
  int64_t a = axis < 0 ? axis + rank : axis;
  LOOM_CHECK(a >= 0 && a < rank, what, " ", axis, " is out of range for rank ", rank);
  return static_cast<int>(a);
}

std::string TensorType::to_string() const {
  return std::string(dtype_name(dtype)) + shape.to_string();
}

std::string Device::to_string() const {
  switch (kind) {
    case Kind::cpu:
      return "cpu";
    case Kind::reference:
      return "reference";
    case Kind::cuda:
      return "cuda:" + std::to_string(index);
  }
  return "?";
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "reference" || s == "ref") return reference();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (const std::exception&) {
    }
  }
  fail("[device] unknown device '", s, "' (expected cpu, reference, cuda or cuda:N)");
}

}  // namespace loom
