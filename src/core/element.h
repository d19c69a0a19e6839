// Scalar element access for any dtype by flat storage index — the slow, general path used by the
// reference backend, conversions and tests. Hot kernels use typed pointers instead.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "loom/dtype.h"

namespace loom::detail {

inline double load_element(DType t, const void* base, int64_t i) {
  switch (t) {
    case DType::f32:
      return static_cast<const float*>(base)[i];
    case DType::f64:
      return static_cast<const double*>(base)[i];
    case DType::f16:
      return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::bf16:
      return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::i8:
      return static_cast<const int8_t*>(base)[i];
    case DType::u8:
      return static_cast<const uint8_t*>(base)[i];
    case DType::i16:
      return static_cast<const int16_t*>(base)[i];
    case DType::i32:
      return static_cast<const int32_t*>(base)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::boolean:
      return static_cast<const uint8_t*>(base)[i] != 0;
    case DType::u4:
    case DType::i4: {
      uint8_t byte = static_cast<const uint8_t*>(base)[i >> 1];
      int v = (i & 1) ? (byte >> 4) : (byte & 15);
      if (t == DType::i4 && v >= 8) v -= 16;
      return v;
    }
    case DType::c64:
      return static_cast<const float*>(base)[2 * i];  // real part
  }
  return 0;
}

template <class I>
inline I saturate(double v) {
  if (std::isnan(v)) return 0;
  constexpr double lo = static_cast<double>(std::numeric_limits<I>::min());
  constexpr double hi = static_cast<double>(std::numeric_limits<I>::max());
  if (v <= lo) return std::numeric_limits<I>::min();
  if (v >= hi) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

// Stores `v`; integer targets truncate toward zero and saturate (callers round first if they want).
inline void store_element(DType t, void* base, int64_t i, double v) {
  switch (t) {
    case DType::f32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      return;
    case DType::f64:
      static_cast<double*>(base)[i] = v;
      return;
    case DType::f16:
      static_cast<uint16_t*>(base)[i] = f32_to_f16(static_cast<float>(v));
      return;
    case DType::bf16:
      static_cast<uint16_t*>(base)[i] = f32_to_bf16(static_cast<float>(v));
      return;
    case DType::i8:
      static_cast<int8_t*>(base)[i] = saturate<int8_t>(v);
      return;
    case DType::u8:
      static_cast<uint8_t*>(base)[i] = saturate<uint8_t>(v);
      return;
    case DType::i16:
      static_cast<int16_t*>(base)[i] = saturate<int16_t>(v);
      return;
    case DType::i32:
      static_cast<int32_t*>(base)[i] = saturate<int32_t>(v);
      return;
    case DType::i64:
      static_cast<int64_t*>(base)[i] = saturate<int64_t>(v);
      return;
    case DType::boolean:
      static_cast<uint8_t*>(base)[i] = v != 0;
      return;
    case DType::u4:
    case DType::i4: {
      double lo = t == DType::i4 ? -8 : 0, hi = t == DType::i4 ? 7 : 15;
      int q = static_cast<int>(std::isnan(v) ? 0 : (v < lo ? lo : (v > hi ? hi : v)));
      uint8_t nib = static_cast<uint8_t>(q & 15);
      uint8_t& byte = static_cast<uint8_t*>(base)[i >> 1];
      byte = (i & 1) ? static_cast<uint8_t>((byte & 0x0f) | (nib << 4))
                     : static_cast<uint8_t>((byte & 0xf0) | nib);
      return;
    }
    case DType::c64:
      static_cast<float*>(base)[2 * i] = static_cast<float>(v);
      static_cast<float*>(base)[2 * i + 1] = 0;
      return;
  }
}

}  // namespace loom::detail
