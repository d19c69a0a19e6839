#include "loom/ndarray.h"

#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>

#include "core/element.h"

namespace loom {

std::shared_ptr<Storage> Storage::allocate(size_t bytes, bool zero) {
  auto s = std::shared_ptr<Storage>(new Storage());
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  s->data_ = static_cast<std::byte*>(std::aligned_alloc(64, rounded));
  LOOM_CHECK(s->data_ != nullptr, "[ndarray] out of memory allocating ", bytes, " bytes");
  if (zero) std::memset(s->data_, 0, rounded);
  s->size_ = bytes;
  s->owned_ = true;
  return s;
}

std::shared_ptr<Storage> Storage::external(void* data, size_t bytes,
                                           std::shared_ptr<void> keepalive, Device device) {
  auto s = std::shared_ptr<Storage>(new Storage());
  s->device_ = device;
  s->data_ = static_cast<std::byte*>(data);
  s->size_ = bytes;
  s->keepalive_ = std::move(keepalive);
  return s;
}

Storage::~Storage() {
  if (owned_) std::free(data_);
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> st(static_cast<size_t>(shape.rank()));
  int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    st[static_cast<size_t>(i)] = s;
    s *= shape[i];
  }
  return st;
}

NDArray::NDArray(DType dtype, Shape shape)
    : NDArray(Storage::allocate(storage_bytes(dtype, shape.numel()), true), dtype, shape,
              contiguous_strides(shape), 0) {}

NDArray NDArray::empty(DType dtype, Shape shape) {
  LOOM_CHECK(shape.is_static(), "[ndarray] cannot allocate dynamic shape ", shape.to_string());
  auto st = contiguous_strides(shape);
  auto storage = Storage::allocate(storage_bytes(dtype, shape.numel()), false);
  return NDArray(std::move(storage), dtype, std::move(shape), std::move(st), 0);
}

NDArray::NDArray(std::shared_ptr<Storage> storage, DType dtype, Shape shape,
                 std::vector<int64_t> strides, int64_t offset)
    : storage_(std::move(storage)),
      dtype_(dtype),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset) {
  LOOM_CHECK(shape_.is_static(), "[ndarray] shape ", shape_.to_string(), " is not static");
  LOOM_CHECK(static_cast<int>(strides_.size()) == shape_.rank(), "[ndarray] ", strides_.size(),
             " strides for shape ", shape_.to_string());
  numel_ = shape_.numel();
  if (numel_ == 0 || !storage_) return;
  // Bounds check: the lowest and highest element must lie inside the storage.
  int64_t lo = offset_, hi = offset_;
  for (int i = 0; i < shape_.rank(); ++i) {
    int64_t span = (shape_[i] - 1) * strides_[static_cast<size_t>(i)];
    (span < 0 ? lo : hi) += span;
  }
  int64_t capacity =
      static_cast<int64_t>(storage_->size() * 8 / static_cast<size_t>(dtype_bits(dtype)));
  LOOM_CHECK(lo >= 0 && hi < capacity, "[ndarray] view ", shape_.to_string(), " with offset ",
             offset_, " reaches elements [", lo, ", ", hi, "] of a storage holding ", capacity);
  LOOM_CHECK(!is_packed(dtype_) || (offset_ % 2 == 0 && is_contiguous()), "[ndarray] packed ",
             dtype_name(dtype_), " arrays must be contiguous at an even offset");
}

bool NDArray::is_contiguous() const {
  int64_t s = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[static_cast<size_t>(i)] != s) return false;
    s *= shape_[i];
  }
  return true;
}

void* NDArray::data() const {
  if (!storage_) return nullptr;
  return storage_->data() + static_cast<size_t>(offset_) * dtype_bits(dtype_) / 8;
}

NDArray NDArray::view(Shape shape, std::vector<int64_t> strides, int64_t offset) const {
  LOOM_CHECK(defined(), "[ndarray] view of an empty array");
  return NDArray(storage_, dtype_, std::move(shape), std::move(strides), offset);
}

NDArray NDArray::reshape(Shape shape) const {
  // Resolve a single -1 like numpy.
  int64_t known = 1;
  int infer = -1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == -1) {
      LOOM_CHECK(infer < 0, "[ndarray] reshape: more than one -1 in ", shape.to_string());
      infer = i;
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) shape[infer] = known ? numel_ / known : 0;
  LOOM_CHECK(shape.numel() == numel_, "[ndarray] reshape ", shape_.to_string(), " to ",
             shape.to_string(), ": element counts differ");
  NDArray c = contiguous();
  return NDArray(c.storage_, dtype_, shape, contiguous_strides(shape), c.offset_);
}

namespace {
// Calls fn(flat_row_major_index, storage_element_index) for every element.
template <class F>
void for_each_element(const NDArray& a, F&& fn) {
  int r = a.rank();
  std::vector<int64_t> idx(static_cast<size_t>(r), 0);
  int64_t n = a.numel();
  int64_t pos = a.offset();
  for (int64_t flat = 0; flat < n; ++flat) {
    fn(flat, pos);
    for (int d = r - 1; d >= 0; --d) {
      auto du = static_cast<size_t>(d);
      pos += a.strides()[du];
      if (++idx[du] < a.shape()[d]) break;
      pos -= a.strides()[du] * a.shape()[d];
      idx[du] = 0;
    }
  }
}
}  // namespace

namespace {
// Host code must never dereference device memory: a clear error instead of a crash.
void check_host(const NDArray& a, const char* what) {
  LOOM_CHECK(a.device().kind != Device::Kind::cuda, "[ndarray] ", what, ": the array lives on ",
             a.device().to_string(), "; copy it with loom::to_host first");
}
}  // namespace

NDArray NDArray::contiguous() const {
  if (is_contiguous()) return *this;
  check_host(*this, "contiguous");
  NDArray out = empty(dtype_, shape_);
  size_t es = static_cast<size_t>(dtype_bits(dtype_) / 8);
  const std::byte* src = storage_->data();
  std::byte* dst = static_cast<std::byte*>(out.data());
  for_each_element(*this, [&](int64_t flat, int64_t pos) {
    std::memcpy(dst + static_cast<size_t>(flat) * es, src + static_cast<size_t>(pos) * es, es);
  });
  return out;
}

NDArray NDArray::clone() const {
  check_host(*this, "clone");
  NDArray c = contiguous();
  NDArray out = empty(dtype_, shape_);
  std::memcpy(out.data(), c.data(), nbytes());
  return out;
}

std::vector<double> NDArray::to_doubles() const {
  std::vector<double> out(static_cast<size_t>(numel_));
  if (numel_ == 0) return out;
  check_host(*this, "to_doubles");
  const void* base = storage_->data();
  for_each_element(*this, [&](int64_t flat, int64_t pos) {
    out[static_cast<size_t>(flat)] = detail::load_element(dtype_, base, pos);
  });
  return out;
}

double NDArray::at(int64_t flat_index) const {
  LOOM_CHECK(flat_index >= 0 && flat_index < numel_, "[ndarray] index ", flat_index,
             " out of range for ", shape_.to_string());
  check_host(*this, "at");
  int64_t pos = offset_, rem = flat_index;
  for (int d = rank() - 1; d >= 0; --d) {
    pos += (rem % shape_[d]) * strides_[static_cast<size_t>(d)];
    rem /= shape_[d];
  }
  return detail::load_element(dtype_, storage_->data(), pos);
}

NDArray NDArray::from_doubles(const std::vector<double>& values, Shape shape, DType dtype) {
  NDArray a(dtype, std::move(shape));
  LOOM_CHECK(static_cast<int64_t>(values.size()) == a.numel(), "[ndarray] ", values.size(),
             " values for shape ", a.shape().to_string());
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    if (is_integer(dtype)) v = std::nearbyint(v);
    detail::store_element(dtype, a.data(), static_cast<int64_t>(i), v);
  }
  return a;
}

NDArray NDArray::astype(DType dtype) const {
  if (dtype == dtype_) return *this;
  return from_doubles(to_doubles(), shape_, dtype);
}

std::string NDArray::to_string(int max_elements) const {
  std::ostringstream os;
  os << dtype_name(dtype_) << shape_.to_string() << " {";
  int64_t n = std::min<int64_t>(numel_, max_elements);
  for (int64_t i = 0; i < n; ++i) os << (i ? ", " : "") << at(i);
  if (numel_ > n) os << ", ...";
  os << "}";
  return os.str();
}

NDArray zeros(Shape shape, DType dtype) { return NDArray(dtype, std::move(shape)); }

NDArray full(Shape shape, double value, DType dtype) {
  NDArray a(dtype, std::move(shape));
  for (int64_t i = 0; i < a.numel(); ++i) detail::store_element(dtype, a.data(), i, value);
  return a;
}

NDArray random_uniform(Shape shape, DType dtype, double lo, double hi, uint64_t seed) {
  NDArray a(dtype, std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < a.numel(); ++i) {
    double v = dist(rng);
    if (is_integer(dtype) || dtype == DType::boolean) v = std::floor(v);
    detail::store_element(dtype, a.data(), i, v);
  }
  return a;
}

NDArray random_normal(Shape shape, DType dtype, uint64_t seed, double mean, double stddev) {
  NDArray a(dtype, std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, stddev);
  for (int64_t i = 0; i < a.numel(); ++i) detail::store_element(dtype, a.data(), i, dist(rng));
  return a;
}

}  // namespace loom
