// loom/ndarray.h — the data type: storage + dtype + shape + strides + offset.
#pragma once
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "loom/device.h"
#include "loom/dtype.h"
#include "loom/error.h"
#include "loom/shape.h"

namespace loom {

// A block of bytes. Host storage is 64-byte aligned; `external` storage wraps memory that
// somebody else owns (a memory-mapped file, an arena, a device allocator's block) and keeps it
// alive through `keepalive`. Device storage (device() != cpu) is never touched by host code: the
// NDArray methods that read elements refuse it (copy it with loom::to_host first).
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t bytes, bool zero = true);
  static std::shared_ptr<Storage> external(void* data, size_t bytes,
                                           std::shared_ptr<void> keepalive = nullptr,
                                           Device device = Device::cpu());
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  Device device() const { return device_; }

 private:
  Storage() = default;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;
  Device device_ = Device::cpu();
  std::shared_ptr<void> keepalive_;
};

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, int8_t>)
    return DType::i8;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::u8;
  else if constexpr (std::is_same_v<T, int16_t>)
    return DType::i16;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::i64;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::boolean;
  else if constexpr (std::is_same_v<T, std::complex<float>>)
    return DType::c64;
  else
    static_assert(sizeof(T) == 0, "no loom dtype for this C++ type");
}

// An n-dimensional array on the host. Copies are shallow (they share storage); `clone()` copies
// the data. Strides and offset are in elements. `view()` aliases memory without copying, like
// MPSNDArray's arrayView, and is bounds-checked against the storage.
class NDArray {
 public:
  NDArray() = default;
  // A zero-filled contiguous array.
  NDArray(DType dtype, Shape shape);
  // Uninitialised contiguous array (for outputs about to be overwritten).
  static NDArray empty(DType dtype, Shape shape);
  // Wraps existing storage; no copy.
  NDArray(std::shared_ptr<Storage> storage, DType dtype, Shape shape, std::vector<int64_t> strides,
          int64_t offset);

  template <class T>
  static NDArray from_vector(const std::vector<T>& values, Shape shape) {
    constexpr DType dt = dtype_of<T>();
    NDArray a = empty(dt, std::move(shape));
    LOOM_CHECK(static_cast<int64_t>(values.size()) == a.numel(),
               "[ndarray] from_vector: ", values.size(), " values for shape ",
               a.shape().to_string());
    if constexpr (std::is_same_v<T, bool>) {
      for (size_t i = 0; i < values.size(); ++i) a.data_as<uint8_t>()[i] = values[i] ? 1 : 0;
    } else {
      __builtin_memcpy(a.data(), values.data(), values.size() * sizeof(T));
    }
    return a;
  }
  // Converts `values` into any dtype (f16, bf16, i4, ... included).
  static NDArray from_doubles(const std::vector<double>& values, Shape shape, DType dtype);
  template <class T>
  static NDArray from_vector(const std::vector<T>& values, Shape shape, DType dtype) {
    return from_doubles(std::vector<double>(values.begin(), values.end()), std::move(shape), dtype);
  }
  // Every element converted to T, in row-major order, whatever the strides.
  template <class T>
  std::vector<T> to_vector() const {
    if constexpr (std::is_same_v<T, std::complex<float>>) {
      LOOM_CHECK(dtype_ == DType::c64, "[ndarray] to_vector<complex>: array is ",
                 dtype_name(dtype_));
      NDArray c = contiguous();
      auto* p = c.data_as<std::complex<float>>();
      return std::vector<T>(p, p + numel());
    } else {
      std::vector<double> d = to_doubles();
      return std::vector<T>(d.begin(), d.end());
    }
  }
  std::vector<double> to_doubles() const;

  // .npy files (format 1.0/2.0, little endian, C order; f16/f32/f64/ints/bool/c64).
  static NDArray load_npy(const std::string& path);
  void save_npy(const std::string& path) const;

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return storage_bytes(dtype_, numel_); }
  TensorType type() const { return {dtype_, shape_}; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Where the elements live (the host unless a device backend allocated them).
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  bool is_contiguous() const;

  // Pointer to element [0,...,0]. For packed types the offset must be even.
  void* data() const;
  template <class T>
  T* data_as() const {
    return static_cast<T*>(data());
  }

  // Zero-copy view with explicit shape/strides/offset (elements, relative to this array's
  // storage start). Throws if any element would fall outside the storage.
  NDArray view(Shape shape, std::vector<int64_t> strides, int64_t offset) const;
  // Same data, new shape: a view when contiguous, else a copy.
  NDArray reshape(Shape shape) const;
  // A contiguous array with the same values (this array itself when already contiguous).
  NDArray contiguous() const;
  NDArray clone() const;
  // Element i (row-major) as double — for tests and printing, not for hot loops.
  double at(int64_t flat_index) const;
  // Converts to another dtype (round to nearest even, saturating for integers).
  NDArray astype(DType dtype) const;

  std::string to_string(int max_elements = 16) const;

 private:
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::f32;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;
  int64_t numel_ = 0;
};

std::vector<int64_t> contiguous_strides(const Shape& shape);

NDArray zeros(Shape shape, DType dtype = DType::f32);
NDArray full(Shape shape, double value, DType dtype = DType::f32);
// Uniform in [lo, hi) (integers: [lo, hi)), deterministic for a seed.
NDArray random_uniform(Shape shape, DType dtype, double lo, double hi, uint64_t seed);
NDArray random_normal(Shape shape, DType dtype, uint64_t seed, double mean = 0, double stddev = 1);

}  // namespace loom
