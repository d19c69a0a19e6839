// Device-side element access for every Loom dtype (the GPU twin of core/element.h, with the same
// conversion rules: integers truncate toward zero and saturate, NaN -> 0, f16/bf16 round to
// nearest even once), and strided index arithmetic. Included only by .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "backends/cuda/strided.h"
#include "loom/dtype.h"

namespace loom::backends::cuda {

// Dtype codes as plain ints (the enum's values) for kernels.
enum : int {
  kF32 = static_cast<int>(DType::f32),
  kF16 = static_cast<int>(DType::f16),
  kBF16 = static_cast<int>(DType::bf16),
  kF64 = static_cast<int>(DType::f64),
  kI8 = static_cast<int>(DType::i8),
  kU8 = static_cast<int>(DType::u8),
  kI16 = static_cast<int>(DType::i16),
  kI32 = static_cast<int>(DType::i32),
  kI64 = static_cast<int>(DType::i64),
  kBool = static_cast<int>(DType::boolean),
  kI4 = static_cast<int>(DType::i4),
  kU4 = static_cast<int>(DType::u4),
  kC64 = static_cast<int>(DType::c64)
};

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf2f(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
__device__ __forceinline__ uint16_t f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }
__device__ __forceinline__ uint16_t f2bf(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

// Element i of any dtype as T (T: float, double or int64_t).
template <class T>
__device__ __forceinline__ T load(int dt, const void* p, int64_t i) {
  switch (dt) {
    case kF32:
      return static_cast<T>(static_cast<const float*>(p)[i]);
    case kF16:
      return static_cast<T>(h2f(static_cast<const uint16_t*>(p)[i]));
    case kBF16:
      return static_cast<T>(bf2f(static_cast<const uint16_t*>(p)[i]));
    case kF64:
      return static_cast<T>(static_cast<const double*>(p)[i]);
    case kI8:
      return static_cast<T>(static_cast<const int8_t*>(p)[i]);
    case kU8:
      return static_cast<T>(static_cast<const uint8_t*>(p)[i]);
    case kI16:
      return static_cast<T>(static_cast<const int16_t*>(p)[i]);
    case kI32:
      return static_cast<T>(static_cast<const int32_t*>(p)[i]);
    case kI64:
      return static_cast<T>(static_cast<const int64_t*>(p)[i]);
    case kBool:
      return static_cast<T>(static_cast<const uint8_t*>(p)[i] != 0);
    case kI4:
    case kU4: {
      uint8_t byte = static_cast<const uint8_t*>(p)[i >> 1];
      int v = (i & 1) ? (byte >> 4) : (byte & 15);
      if (dt == kI4 && v >= 8) v -= 16;
      return static_cast<T>(v);
    }
    case kC64:
      return static_cast<T>(static_cast<const float*>(p)[2 * i]);
  }
  return T(0);
}

template <class I>
__device__ __forceinline__ I saturate(double v, double lo, double hi) {
  if (v != v) return 0;
  if (v <= lo) return static_cast<I>(lo);
  if (v >= hi) return static_cast<I>(hi);
  return static_cast<I>(v);
}
template <class I>
__device__ __forceinline__ I saturate_int(int64_t v, int64_t lo, int64_t hi) {
  return static_cast<I>(v < lo ? lo : (v > hi ? hi : v));
}

// Stores v into element i. Packed i4/u4 read-modify-write a byte: callers must give each thread
// whole bytes (store_packed_pair) — this single-element form is for one-thread-per-byte kernels.
__device__ __forceinline__ void store(int dt, void* p, int64_t i, double v) {
  switch (dt) {
    case kF32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      return;
    case kF64:
      static_cast<double*>(p)[i] = v;
      return;
    case kF16:
      static_cast<uint16_t*>(p)[i] = f2h(static_cast<float>(v));
      return;
    case kBF16:
      static_cast<uint16_t*>(p)[i] = f2bf(static_cast<float>(v));
      return;
    case kI8:
      static_cast<int8_t*>(p)[i] = saturate<int8_t>(v, -128, 127);
      return;
    case kU8:
      static_cast<uint8_t*>(p)[i] = saturate<uint8_t>(v, 0, 255);
      return;
    case kI16:
      static_cast<int16_t*>(p)[i] = saturate<int16_t>(v, -32768, 32767);
      return;
    case kI32:
      static_cast<int32_t*>(p)[i] = saturate<int32_t>(v, -2147483648.0, 2147483647.0);
      return;
    case kI64: {
      int64_t r;
      if (v != v)
        r = 0;
      else if (v <= -9.2233720368547758e18)
        r = INT64_MIN;
      else if (v >= 9.2233720368547758e18)
        r = INT64_MAX;
      else
        r = static_cast<int64_t>(v);
      static_cast<int64_t*>(p)[i] = r;
      return;
    }
    case kBool:
      static_cast<uint8_t*>(p)[i] = v != 0;
      return;
    case kI4:
    case kU4: {
      double lo = dt == kI4 ? -8 : 0, hi = dt == kI4 ? 7 : 15;
      int q = static_cast<int>(v != v ? 0 : (v < lo ? lo : (v > hi ? hi : v)));
      uint8_t nib = static_cast<uint8_t>(q & 15);
      uint8_t& byte = static_cast<uint8_t*>(p)[i >> 1];
      byte = (i & 1) ? static_cast<uint8_t>((byte & 0x0f) | (nib << 4))
                     : static_cast<uint8_t>((byte & 0xf0) | nib);
      return;
    }
    case kC64:
      static_cast<float*>(p)[2 * i] = static_cast<float>(v);
      static_cast<float*>(p)[2 * i + 1] = 0;
      return;
  }
}
// float results: f16/bf16 round from float directly (as the CPU backend does), never via double.
__device__ __forceinline__ void store(int dt, void* p, int64_t i, float v) {
  switch (dt) {
    case kF32:
      static_cast<float*>(p)[i] = v;
      return;
    case kF16:
      static_cast<uint16_t*>(p)[i] = f2h(v);
      return;
    case kBF16:
      static_cast<uint16_t*>(p)[i] = f2bf(v);
      return;
    default:
      store(dt, p, i, static_cast<double>(v));
      return;
  }
}
// Integer results stay exact (no trip through double for i64).
__device__ __forceinline__ void store(int dt, void* p, int64_t i, int64_t v) {
  switch (dt) {
    case kI64:
      static_cast<int64_t*>(p)[i] = v;
      return;
    case kI32:
      static_cast<int32_t*>(p)[i] = saturate_int<int32_t>(v, INT32_MIN, INT32_MAX);
      return;
    case kI16:
      static_cast<int16_t*>(p)[i] = saturate_int<int16_t>(v, -32768, 32767);
      return;
    case kI8:
      static_cast<int8_t*>(p)[i] = saturate_int<int8_t>(v, -128, 127);
      return;
    case kU8:
      static_cast<uint8_t*>(p)[i] = saturate_int<uint8_t>(v, 0, 255);
      return;
    case kBool:
      static_cast<uint8_t*>(p)[i] = v != 0;
      return;
    default:
      store(dt, p, i, static_cast<double>(v));
      return;
  }
}
__device__ __forceinline__ void store(int dt, void* p, int64_t i, bool v) {
  store(dt, p, i, static_cast<int64_t>(v));
}

#define LOOM_GRID_STRIDE(i, n)                                                           \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Asks the L2 for the 16-byte units of [p, p + bytes) that lie before `end` (an sm_90 bulk
// prefetch: no registers, no shared memory, nothing to wait for). The array holding p starts
// 16-byte aligned, so rounding p down stays inside it.
__device__ __forceinline__ void prefetch_l2(const uint8_t* p, int64_t bytes, const uint8_t* end) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const auto a0 = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{15};
  const auto a1 =
      min(reinterpret_cast<uintptr_t>(p + bytes) + 15, reinterpret_cast<uintptr_t>(end)) &
      ~uintptr_t{15};
  if (a1 > a0)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a0),
                 "r"(static_cast<unsigned>(a1 - a0))
                 : "memory");
#endif
}

}  // namespace loom::backends::cuda
