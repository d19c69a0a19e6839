// Shared helpers for the attention kernel tests: strided random tensors in f32/f16/bf16 that keep
// an exact double copy of their (rounded) values, and a per-run random seed.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "loom/dtype.h"

namespace loom::cpu::testing {

// A fresh seed each run (LOOM_TEST_SEED=<n> replays one); tests print it on failure.
inline uint64_t test_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* s = std::getenv("LOOM_TEST_SEED")) return std::strtoull(s, nullptr, 10);
    return static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
  }();
  return seed;
}

inline double round_to(DType t, double x) {
  if (t == DType::f16) return f16_to_f32(f32_to_f16(static_cast<float>(x)));
  if (t == DType::bf16) return bf16_to_f32(f32_to_bf16(static_cast<float>(x)));
  return static_cast<float>(x);
}

// A [d0,d1,d2,d3] view into a larger row-major allocation `alloc` at `origin` (so strides are
// those of the allocation: a slice of a KV cache, say).
struct Tensor {
  DType dt = DType::f32;
  int64_t dims[4] = {};
  int64_t strides[4] = {};
  int64_t offset = 0;
  std::vector<uint8_t> bytes;
  std::vector<double> vals;  // exact values, indexed like the allocation

  Tensor(DType t, std::vector<int64_t> d, std::vector<int64_t> alloc, std::vector<int64_t> origin)
      : dt(t) {
    int64_t n = 1;
    for (int i = 3; i >= 0; --i) {
      dims[i] = d[i];
      strides[i] = n;
      n *= alloc[i];
    }
    for (int i = 0; i < 4; ++i) offset += origin[i] * strides[i];
    bytes.assign(static_cast<size_t>(n) * elem(), 0);
    vals.assign(static_cast<size_t>(n), 0.0);
  }
  explicit Tensor(DType t, std::vector<int64_t> d) : Tensor(t, d, d, {0, 0, 0, 0}) {}

  size_t elem() const { return dt == DType::f32 ? 4 : dt == DType::boolean ? 1 : 2; }
  int64_t index(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return offset + a * strides[0] + b * strides[1] + c * strides[2] + d * strides[3];
  }
  const void* data() const { return bytes.data() + offset * elem(); }
  void* data() { return bytes.data() + offset * elem(); }
  void set_raw(int64_t idx, double x) {
    x = dt == DType::boolean ? (x != 0) : round_to(dt, x);
    vals[idx] = x;
    uint8_t* p = bytes.data() + idx * elem();
    if (dt == DType::f32) {
      float f = static_cast<float>(x);
      std::memcpy(p, &f, 4);
    } else if (dt == DType::boolean) {
      *p = x != 0;
    } else {
      uint16_t h =
          dt == DType::f16 ? f32_to_f16(static_cast<float>(x)) : f32_to_bf16(static_cast<float>(x));
      std::memcpy(p, &h, 2);
    }
  }
  void set(int64_t a, int64_t b, int64_t c, int64_t d, double x) { set_raw(index(a, b, c, d), x); }
  double at(int64_t a, int64_t b, int64_t c, int64_t d) const { return vals[index(a, b, c, d)]; }
  double read(int64_t a, int64_t b, int64_t c, int64_t d) const {  // decodes the stored bytes
    const uint8_t* p = bytes.data() + index(a, b, c, d) * elem();
    if (dt == DType::f32) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, p, 2);
    return dt == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
  // Fills the whole allocation (so data outside the view is junk the kernel must not read).
  void randomize(std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    for (size_t i = 0; i < vals.size(); ++i) set_raw(static_cast<int64_t>(i), u(rng));
  }
};

}  // namespace loom::cpu::testing
