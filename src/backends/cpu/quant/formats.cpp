// Block formats: sizes, the scalar reference decoder, and simple encoders. Layouts are documented
// in qmatmul.h; the decoders mirror ggml's float operation order so that results are bit-equal.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "backends/cpu/quant/internal.h"
#include "backends/cpu/quant/qmatmul.h"
#include "loom/dtype.h"
#include "loom/error.h"

namespace loom::cpu::quant {
namespace {

using detail::load_half;

struct FormatRow {
  std::string_view name;
  int64_t block;
  size_t bytes;
  bool integer_dot;
};
// One row per format (index = enum value).
constexpr std::array<FormatRow, kNumFormats> kFormats = {{
    {"q4_0", 32, 18, true},
    {"q4_1", 32, 20, true},
    {"q8_0", 32, 34, true},
    {"q5_0", 32, 22, false},
    {"q5_1", 32, 24, false},
    {"q4_k", 256, 144, false},
    {"q5_k", 256, 176, false},
    {"q6_k", 256, 210, false},
    {"iq4_nl", 32, 18, false},
    {"affine_u4", 32, 20, true},
    {"affine_i8", 32, 36, true},
}};

const FormatRow& row_of(Format fmt) {
  auto i = static_cast<size_t>(fmt);
  LOOM_CHECK(i < kFormats.size(), "[qmatmul] unknown format id ", i);
  return kFormats[i];
}

constexpr int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                               1,    13,   25,  38,  53,  69,  89,  113};

void store_half(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
// The f16 value actually stored, so encoders quantize against what decoders will read.
float rounded_half(float v) { return f16_to_f32(f32_to_f16(v)); }

void check_half(float v, Format fmt) {
  LOOM_CHECK(std::isfinite(rounded_half(v)), "[quantize_row] ", format_name(fmt),
             ": a block scale of ", v, " does not fit in f16 (inputs too large or not finite)");
}

void get_scale_min_k4(int s, const uint8_t* q, int* sc, int* m) {
  if (s < 4) {
    *sc = q[s] & 63;
    *m = q[s + 4] & 63;
  } else {
    *sc = (q[s + 4] & 0xF) | ((q[s - 4] >> 6) << 4);
    *m = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
  }
}

void put_scale_min_k4(const int* sc, const int* m, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

// ---- decoders: one block each ----

void dq_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}
void dq_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}
void dq_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void dq_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = static_cast<float>(((qs[j] & 0xF) | h0) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | h1) - 16) * d;
  }
}
void dq_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = static_cast<float>((qs[j] & 0xF) | h0) * d + m;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | h1) * d + m;
  }
}
void dq_iq4_nl(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * kIq4nl[b[2 + j] & 0xF];
    y[j + 16] = d * kIq4nl[b[2 + j] >> 4];
  }
}
void dq_q4_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    get_scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    get_scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * (q[32 * c + l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * (q[32 * c + l] >> 4) - m2;
  }
}
void dq_q5_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    get_scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    get_scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    const uint8_t u1 = static_cast<uint8_t>(1u << (2 * c)),
                  u2 = static_cast<uint8_t>(2u << (2 * c));
    for (int l = 0; l < 32; ++l)
      y[64 * c + l] = d1 * ((ql[32 * c + l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      y[64 * c + 32 + l] = d2 * ((ql[32 * c + l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
  }
}
void dq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
  }
}
void dq_affine_u4(const uint8_t* b, float* y) {
  const float s = load_half(b), zp = load_half(b + 2);
  for (int i = 0; i < 16; ++i) {
    y[2 * i] = (static_cast<float>(b[4 + i] & 0xF) - zp) * s;
    y[2 * i + 1] = (static_cast<float>(b[4 + i] >> 4) - zp) * s;
  }
}
void dq_affine_i8(const uint8_t* b, float* y) {
  const float s = load_half(b), zp = load_half(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = (static_cast<float>(static_cast<int8_t>(b[4 + j])) - zp) * s;
}

// ---- encoders: one block each ----

void minmax(const float* x, int n, float* mn, float* mx) {
  *mn = x[0];
  *mx = x[0];
  for (int i = 1; i < n; ++i) {
    *mn = std::min(*mn, x[i]);
    *mx = std::max(*mx, x[i]);
  }
}
// The element with the largest magnitude, with its sign (ggml's symmetric formats map it to the
// most negative level, which has one more step than the positive side).
float signed_absmax(const float* x, int n) {
  float amax = 0, v = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      v = x[i];
    }
  return v;
}

void q_q4_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, 32) / -8;
  check_half(d, Format::q4_0);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_half(b, d);
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int c = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
    b[2 + j] = static_cast<uint8_t>(a | (c << 4));
  }
}
void q_q4_1(const float* x, uint8_t* b) {
  float mn, mx;
  minmax(x, 32, &mn, &mx);
  const float d = (mx - mn) / 15;
  check_half(d, Format::q4_1);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_half(b, d);
  store_half(b + 2, mn);
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f));
    const int c = std::min(15, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
    b[4 + j] = static_cast<uint8_t>(a | (c << 4));
  }
}
void q_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  check_half(d, Format::q8_0);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_half(b, d);
  for (int j = 0; j < 32; ++j)
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
}
void q_q5_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, 32) / -16;
  check_half(d, Format::q5_0);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_half(b, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
    const int c = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
    b[6 + j] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
    qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((c >> 4) & 1) << (j + 16);
  }
  std::memcpy(b + 2, &qh, 4);
}
void q_q5_1(const float* x, uint8_t* b) {
  float mn, mx;
  minmax(x, 32, &mn, &mx);
  const float d = (mx - mn) / 31;
  check_half(d, Format::q5_1);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  store_half(b, d);
  store_half(b + 2, mn);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(31, static_cast<int>((x[j] - mn) * id + 0.5f));
    const int c = std::min(31, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
    b[8 + j] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
    qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((c >> 4) & 1) << (j + 16);
  }
  std::memcpy(b + 4, &qh, 4);
}
int nearest_iq4(float v) {
  int best = 0;
  for (int i = 1; i < 16; ++i)
    if (std::fabs(kIq4nl[i] - v) < std::fabs(kIq4nl[best] - v)) best = i;
  return best;
}
void q_iq4_nl(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, 32) / -127;
  check_half(d, Format::iq4_nl);
  const float dr = rounded_half(d);
  const float id = dr != 0 ? 1.0f / dr : 0.0f;
  store_half(b, d);
  for (int j = 0; j < 16; ++j)
    b[2 + j] = static_cast<uint8_t>(nearest_iq4(x[j] * id) | (nearest_iq4(x[j + 16] * id) << 4));
}
// k-quants with a min: per sub-block of 32, levels 0..nmax over [min(0, lo), hi], 6-bit scale and
// min indices relative to the super-block's d and dmin.
void q_kmin(const float* x, uint8_t* b, int nmax, Format fmt) {
  float scale[8], mins[8];
  for (int s = 0; s < 8; ++s) {
    float mn, mx;
    minmax(x + 32 * s, 32, &mn, &mx);
    mn = std::min(mn, 0.0f);
    scale[s] = (mx - mn) / nmax;
    mins[s] = -mn;
  }
  const float max_scale = *std::max_element(scale, scale + 8);
  const float max_min = *std::max_element(mins, mins + 8);
  const float d = rounded_half(max_scale / 63), dmin = rounded_half(max_min / 63);
  check_half(d, fmt);
  check_half(dmin, fmt);
  int ls[8], lm[8];
  for (int s = 0; s < 8; ++s) {
    ls[s] = d > 0 ? std::min(63, static_cast<int>(std::lround(scale[s] / d))) : 0;
    lm[s] = dmin > 0 ? std::min(63, static_cast<int>(std::lround(mins[s] / dmin))) : 0;
  }
  store_half(b, d);
  store_half(b + 2, dmin);
  put_scale_min_k4(ls, lm, b + 4);
  uint8_t q[256];
  for (int s = 0; s < 8; ++s) {
    const float sd = d * ls[s], sm = dmin * lm[s];
    for (int l = 0; l < 32; ++l) {
      const int v = sd > 0 ? static_cast<int>(std::lround((x[32 * s + l] + sm) / sd)) : 0;
      q[32 * s + l] = static_cast<uint8_t>(std::clamp(v, 0, nmax));
    }
  }
  uint8_t* qs = b + (nmax == 15 ? 16 : 48);
  if (nmax == 31) std::memset(b + 16, 0, 32);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      if (nmax == 31) {
        b[16 + l] |= static_cast<uint8_t>(((lo >> 4) & 1) << (2 * c));
        b[16 + l] |= static_cast<uint8_t>(((hi >> 4) & 1) << (2 * c + 1));
      }
    }
}
void q_q6_k(const float* x, uint8_t* b) {
  float scale[16];
  float max_abs_scale = 0, max_scale = 0;
  for (int s = 0; s < 16; ++s) {
    scale[s] = signed_absmax(x + 16 * s, 16) / -32;
    if (std::fabs(scale[s]) > max_abs_scale) {
      max_abs_scale = std::fabs(scale[s]);
      max_scale = scale[s];
    }
  }
  const float d = rounded_half(max_scale / -128);
  check_half(d, Format::q6_k);
  int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
  uint8_t q[256];
  for (int s = 0; s < 16; ++s) {
    const int ls = d != 0 ? std::clamp(static_cast<int>(std::lround(scale[s] / d)), -128, 127) : 0;
    sc[s] = static_cast<int8_t>(ls);
    const float sd = d * ls;
    for (int l = 0; l < 16; ++l) {
      const int v = sd != 0 ? static_cast<int>(std::lround(x[16 * s + l] / sd)) : 0;
      q[16 * s + l] = static_cast<uint8_t>(std::clamp(v + 32, 0, 63));
    }
  }
  store_half(b + 208, d);
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  for (int h = 0; h < 2; ++h) {
    const uint8_t* qq = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[64 * h + l] = static_cast<uint8_t>((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                            ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
    }
  }
}
// Loom affine: the block's [min, max] is spread over all levels; zero_point = −min/scale is kept
// real-valued so both ends are representable. A constant block v stores scale |v| and
// zero_point −sign(v) so that level 0 decodes to v exactly.
void affine_params(const float* x, int levels, int qmin, Format fmt, float* scale, float* zp) {
  float mn, mx;
  minmax(x, 32, &mn, &mx);
  if (mx == mn) {
    *scale = rounded_half(std::fabs(mn));
    *zp = mn > 0 ? -1.0f : (mn < 0 ? 1.0f : 0.0f);
    if (*scale == 0) *zp = 0;
    check_half(*scale, fmt);
    return;
  }
  *scale = rounded_half((mx - mn) / (levels - 1));
  check_half(*scale, fmt);
  *zp = rounded_half(qmin - mn / *scale);
}
void q_affine_u4(const float* x, uint8_t* b) {
  float s, zp;
  affine_params(x, 16, 0, Format::affine_u4, &s, &zp);
  store_half(b, s);
  store_half(b + 2, zp);
  const float is = s != 0 ? 1.0f / s : 0.0f;
  auto q = [&](float v) {
    return std::clamp(static_cast<int>(std::nearbyint(v * is + zp)), 0, 15);
  };
  for (int i = 0; i < 16; ++i)
    b[4 + i] = static_cast<uint8_t>(q(x[2 * i]) | (q(x[2 * i + 1]) << 4));
}
void q_affine_i8(const float* x, uint8_t* b) {
  float s, zp;
  affine_params(x, 256, -128, Format::affine_i8, &s, &zp);
  store_half(b, s);
  store_half(b + 2, zp);
  const float is = s != 0 ? 1.0f / s : 0.0f;
  for (int j = 0; j < 32; ++j) {
    const int v = std::clamp(static_cast<int>(std::nearbyint(x[j] * is + zp)), -128, 127);
    b[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(v));
  }
}

using DecodeFn = void (*)(const uint8_t*, float*);
using EncodeFn = void (*)(const float*, uint8_t*);

DecodeFn decoder(Format fmt) {
  switch (fmt) {
    case Format::q4_0:
      return dq_q4_0;
    case Format::q4_1:
      return dq_q4_1;
    case Format::q8_0:
      return dq_q8_0;
    case Format::q5_0:
      return dq_q5_0;
    case Format::q5_1:
      return dq_q5_1;
    case Format::q4_k:
      return dq_q4_k;
    case Format::q5_k:
      return dq_q5_k;
    case Format::q6_k:
      return dq_q6_k;
    case Format::iq4_nl:
      return dq_iq4_nl;
    case Format::affine_u4:
      return dq_affine_u4;
    case Format::affine_i8:
      return dq_affine_i8;
  }
  fail("[qmatmul] unknown format id ", static_cast<int>(fmt));
}

}  // namespace

std::string_view format_name(Format fmt) { return row_of(fmt).name; }

Format format_from_name(std::string_view name) {
  for (int i = 0; i < kNumFormats; ++i)
    if (format_name(static_cast<Format>(i)) == name) return static_cast<Format>(i);
  fail("[quant] unknown block format '", name, "'");
}
int64_t block_size(Format fmt) { return row_of(fmt).block; }
size_t block_bytes(Format fmt) { return row_of(fmt).bytes; }
bool uses_integer_dot(Format fmt) { return row_of(fmt).integer_dot; }

size_t row_bytes(Format fmt, int64_t k) {
  const FormatRow& r = row_of(fmt);
  LOOM_CHECK(k >= 0 && k % r.block == 0, "[qmatmul] k = ", k, " is not a multiple of the ", r.name,
             " block size ", r.block);
  return static_cast<size_t>(k / r.block) * r.bytes;
}

void dequantize_row(Format fmt, const void* row, int64_t k, float* out) {
  row_bytes(fmt, k);  // validates k
  const FormatRow& r = row_of(fmt);
  DecodeFn f = decoder(fmt);
  const auto* b = static_cast<const uint8_t*>(row);
  for (int64_t i = 0; i < k / r.block; ++i) f(b + i * r.bytes, out + i * r.block);
}

void quantize_row(Format fmt, const float* in, int64_t k, void* row) {
  row_bytes(fmt, k);
  const FormatRow& r = row_of(fmt);
  EncodeFn f = nullptr;
  switch (fmt) {
    case Format::q4_0:
      f = q_q4_0;
      break;
    case Format::q4_1:
      f = q_q4_1;
      break;
    case Format::q8_0:
      f = q_q8_0;
      break;
    case Format::q5_0:
      f = q_q5_0;
      break;
    case Format::q5_1:
      f = q_q5_1;
      break;
    case Format::q4_k:
      f = [](const float* x, uint8_t* b) { q_kmin(x, b, 15, Format::q4_k); };
      break;
    case Format::q5_k:
      f = [](const float* x, uint8_t* b) { q_kmin(x, b, 31, Format::q5_k); };
      break;
    case Format::q6_k:
      f = q_q6_k;
      break;
    case Format::iq4_nl:
      f = q_iq4_nl;
      break;
    case Format::affine_u4:
      f = q_affine_u4;
      break;
    case Format::affine_i8:
      f = q_affine_i8;
      break;
  }
  auto* b = static_cast<uint8_t*>(row);
  for (int64_t i = 0; i < k / r.block; ++i) f(in + i * r.block, b + i * r.bytes);
}

}  // namespace loom::cpu::quant
