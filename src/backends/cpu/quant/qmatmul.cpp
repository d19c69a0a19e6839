// qmatmul: argument checks, ISA selection, activation quantization, the scalar integer kernel,
// the dequantize-then-f32 path, and the split over threads.
#include "backends/cpu/quant/qmatmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backends/cpu/quant/internal.h"
#include "loom/error.h"
#include "loom/kernel.h"

namespace loom::cpu::quant {
namespace {

using detail::ActRows;

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512_vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
             __builtin_cpu_supports("fma");
  }
  return false;
}

Isa initial_isa() {
  Isa best = detected_isa();
  if (const char* env = std::getenv("LOOM_QUANT_ISA")) {
    std::string_view v(env);
    Isa want = v == "scalar" ? Isa::scalar : v == "avx2" ? Isa::avx2 : best;
    if (cpu_has(want)) return want;  // an unsupported request silently keeps the best
  }
  return best;
}

std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

// Per element e = x − q·d with |e| ≤ d/2 = max|x|/254; rounding to nearest keeps it unbiased.
// For affine_u4 the values are stored in the weights' nibble order (evens, then odds).
void quantize_activations(Format fmt, const float* x, int64_t m, int64_t k, std::vector<int8_t>& q,
                          std::vector<float>& d, std::vector<float>& s) {
  const int64_t kb = k / 32;
  q.resize(static_cast<size_t>(m * k));
  d.resize(static_cast<size_t>(m * kb));
  s.resize(static_cast<size_t>(m * kb));
  const bool interleaved = fmt == Format::affine_u4;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < kb; ++b) {
      const float* xb = x + i * k + b * 32;
      float amax = 0;
      for (int t = 0; t < 32; ++t) amax = std::max(amax, std::fabs(xb[t]));
      const float db = amax / 127.0f;
      const float id = db != 0 ? 1.0f / db : 0.0f;
      int8_t* qb = q.data() + i * k + b * 32;
      int sum = 0;
      for (int t = 0; t < 32; ++t) {
        const int src = interleaved ? (t < 16 ? 2 * t : 2 * (t - 16) + 1) : t;
        const int v = static_cast<int>(std::nearbyint(xb[src] * id));
        qb[t] = static_cast<int8_t>(v);
        sum += v;
      }
      d[i * kb + b] = db;
      s[i * kb + b] = db * static_cast<float>(sum);
    }
  }
}

void integer_path(Format fmt, const float* x, int64_t m, int64_t k, const uint8_t* w, int64_t n,
                  float* y, ThreadPool* pool, Isa isa) {
  // Reused across calls on this thread: decode calls this hundreds of times per token.
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> d, s;
  quantize_activations(fmt, x, m, k, q, d, s);
  const int64_t kb = k / 32;
  const ActRows act{q.data(), d.data(), s.data(), kb};
  const size_t rb = row_bytes(fmt, k);
  detail::TileFn tiles = isa == Isa::avx512_vnni ? detail::tiles_avx512
                         : isa == Isa::avx2      ? detail::tiles_avx2
                                                 : detail::tiles_scalar;
  // Chunks of 4 weight rows (the kernels' tile); ~64 KiB of weights per task keeps the split
  // cheap relative to the work while giving both threads several chunks.
  const int64_t ntiles = (n + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(65536 / (4 * rb + 1)));
  parallel_for(pool, ntiles, grain, [&](int64_t tb, int64_t te) {
    tiles(fmt, act, m, w, rb, tb * 4, std::min(n, te * 4), y, n);
  });
}

void float_path(Format fmt, const float* x, int64_t m, int64_t k, const uint8_t* w, int64_t n,
                float* y, ThreadPool* pool, Isa isa) {
  const size_t rb = row_bytes(fmt, k);
  auto dot = isa == Isa::avx512_vnni ? detail::dot_f32_avx512
             : isa == Isa::avx2      ? detail::dot_f32_avx2
                                     : detail::dot_f32_scalar;
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(65536 / (rb + 1)));
  parallel_for(pool, n, grain, [&](int64_t jb, int64_t je) {
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(k));
    for (int64_t j = jb; j < je; ++j) {
      dequantize_row(fmt, w + j * rb, k, row.data());
      for (int64_t i = 0; i < m; ++i) y[i * n + j] = dot(x + i * k, row.data(), k);
    }
  });
}

}  // namespace

namespace detail {

void tiles_scalar(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                  int64_t j1, float* y, int64_t ldy) {
  const BlockInfo info = block_info(fmt);
  for (int64_t j = j0; j < j1; ++j) {
    for (int64_t i = 0; i < m; ++i) y[i * ldy + j] = 0;
    for (int64_t b = 0; b < a.kb; ++b) {
      const uint8_t* blk = w + j * rb + b * info.bytes;
      const uint8_t* qs = blk + info.qs_offset;
      int v[32];
      if (info.four_bit) {
        for (int t = 0; t < 16; ++t) {
          v[t] = qs[t] & 0xF;
          v[t + 16] = qs[t] >> 4;
        }
      } else {
        for (int t = 0; t < 32; ++t) v[t] = static_cast<int8_t>(qs[t]);
      }
      const float dw = load_half(blk), wm = block_offset(fmt, blk);
      for (int64_t i = 0; i < m; ++i) {
        const int8_t* qa = a.q + (i * a.kb + b) * 32;
        int sum = 0;
        for (int t = 0; t < 32; ++t) sum += v[t] * qa[t];
        y[i * ldy + j] += dw * a.d[i * a.kb + b] * static_cast<float>(sum) + wm * a.s[i * a.kb + b];
      }
    }
  }
}

float dot_f32_scalar(const float* a, const float* b, int64_t k) {
  float acc[8] = {};
  int64_t t = 0;
  for (; t + 8 <= k; t += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[t + u] * b[t + u];
  for (; t < k; ++t) acc[0] += a[t] * b[t];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace detail

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512_vnni:
      return "avx512_vnni";
  }
  return "?";
}

Isa detected_isa() {
  if (cpu_has(Isa::avx512_vnni)) return Isa::avx512_vnni;
  if (cpu_has(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

Isa active_isa() { return static_cast<Isa>(isa_slot().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  LOOM_CHECK(cpu_has(isa), "[qmatmul] set_isa(", isa_name(isa), "): this CPU does not support it");
  isa_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

void qmatmul(Format fmt, const float* x, int64_t m, int64_t k, const void* w, int64_t n, float* y,
             ThreadPool* pool) {
  LOOM_CHECK(m >= 0 && n >= 0 && k >= 0, "[qmatmul] negative size: m = ", m, ", k = ", k,
             ", n = ", n);
  const int64_t bs = block_size(fmt);
  LOOM_CHECK(k % bs == 0, "[qmatmul] k = ", k, " is not a multiple of the ", format_name(fmt),
             " block size ", bs);
  if (m == 0 || n == 0) return;
  LOOM_CHECK(y != nullptr, "[qmatmul] y is null");
  if (k == 0) {
    std::fill(y, y + m * n, 0.0f);
    return;
  }
  LOOM_CHECK(x != nullptr && w != nullptr, "[qmatmul] x or w is null with m = ", m, ", k = ", k,
             ", n = ", n);
  const Isa isa = active_isa();
  const auto* wb = static_cast<const uint8_t*>(w);
  if (uses_integer_dot(fmt)) {
    integer_path(fmt, x, m, k, wb, n, y, pool, isa);
  } else {
    float_path(fmt, x, m, k, wb, n, y, pool, isa);
  }
}

}  // namespace loom::cpu::quant
