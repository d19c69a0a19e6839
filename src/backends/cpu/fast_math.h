// Vectorisable f32 exp / tanh / sigmoid / silu for the CPU backend's hot loops. libm's scalar
// calls cost ~20 ns each and stop the compiler from vectorising (a SmolLM2 decode step and the
// magika classifier spent a third of their time in tanhf/expf). Accuracy: a few ulp of f32 — well
// inside the op harness' tolerance against the double-precision reference.
#pragma once
#include <cstdint>
#include <cstring>

namespace loom::backends::cpu {

// Cephes-style expf: range reduction by ln 2, degree-6 polynomial, 2^n by exponent bits.
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  float t = x * 1.44269504088896341f;
  int n = static_cast<int>(t + (t >= 0 ? 0.5f : -0.5f));  // round to nearest (vectorises)
  float f = static_cast<float>(n);
  float r = x - f * 0.693359375f + f * 2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // 2^n as two halves, so n = 128 (x near 88.7, exp still finite) does not overflow the exponent.
  int n1 = n >> 1, n2 = n - n1;
  int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return p * s1 * s2;
}

inline float fast_tanh(float x) {
  float ax = x < 0 ? -x : x;
  float e = fast_exp(-2.0f * ax);  // in (0, 1]: no overflow, no cancellation for large |x|
  float big = (1.0f - e) / (1.0f + e);
  float x2 = x * x;  // small |x|: odd Taylor series keeps full relative accuracy
  float small = ax * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  float y = ax < 0.0625f ? small : big;
  return x < 0 ? -y : y;
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

}  // namespace loom::backends::cpu
