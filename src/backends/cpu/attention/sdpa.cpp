// Flash-style SDPA driver: splits the problem into work items, converts strided or half
// precision blocks into f32, applies masks and calls the per-ISA inner loops (kernels.h).
//
// A work item is (batch, kv head, query tile, key split). Its rows are the query positions of
// the tile for every query head of the kv head's group, so one pass over a K/V block serves
// all heads that share it (grouped-query attention reads each K/V byte once per tile).
#include "backends/cpu/attention/sdpa.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/attention/kernels.h"
#include "loom/error.h"
#include "loom/kernel.h"
#include "runtime/thread_pool.h"

namespace loom::cpu {
namespace {

using attn::kPad;
using attn::round_up;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Keys per block: a 64-key block of f32 K and V at D=128 is 64 KiB, which stays in L2 while
// every row of the tile uses it; the 64 x 64 score block (16 KiB) stays in L1.
constexpr int64_t kBlockKeys = 64;
// Rows (query positions x heads of a group) per tile: enough to amortise converting a K/V block.
constexpr int64_t kTileRows = 64;
// Below this many keys per split, the merge and per-split setup cost more than they save.
constexpr int64_t kMinSplitKeys = 256;

bool is_half_or_f32(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

size_t elem_size(DType t) { return t == DType::f32 ? 4 : t == DType::boolean ? 1 : 2; }

const char* ptr_at(const void* base, DType t, int64_t off) {
  return static_cast<const char*>(base) + off * static_cast<int64_t>(elem_size(t));
}

float load_float(DType t, const void* p) {
  switch (t) {
    case DType::f32:
      return *static_cast<const float*>(p);
    case DType::f16:
      return f16_to_f32(*static_cast<const uint16_t*>(p));
    default:
      return bf16_to_f32(*static_cast<const uint16_t*>(p));
  }
}

void store_row(const float* src, int64_t n, float scale, DType t, void* base, int64_t off,
               int64_t stride) {
  char* p = static_cast<char*>(base) + off * static_cast<int64_t>(elem_size(t));
  if (t == DType::f32) {
    auto* d = reinterpret_cast<float*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = src[i] * scale;
  } else if (t == DType::f16) {
    auto* d = reinterpret_cast<uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = f32_to_f16(src[i] * scale);
  } else {
    auto* d = reinterpret_cast<uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = f32_to_bf16(src[i] * scale);
  }
}

// The problem after validation, plus the tiling chosen for it.
struct Plan {
  const SdpaArgs* a;
  const attn::KernelSet* ks;
  int64_t group;   // query heads per kv head
  int64_t kv_len;  // keys attended
  int64_t q_tile;  // query positions per tile
  int64_t n_qtiles;
  int64_t base_items;  // B * Hkv * n_qtiles
  int64_t n_splits;
  int64_t split_keys;  // keys per split (a multiple of kBlockKeys)
  int64_t max_rows;    // group * q_tile
  int64_t d_pad, dv_pad;
  std::vector<float>* partial;  // split results: per (item, split): rows x (dv_pad + 2)
};

// Per-thread scratch, grown on demand and reused across calls.
struct Scratch {
  std::vector<float> q, s, acc, m, l, kbuf, vbuf;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// Masks block [j0, j0 + n) of the score rows: causal positions, the user mask.
void apply_masks(const Plan& p, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t j0, int64_t n,
                 float* s, int64_t s_ld) {
  const SdpaArgs& a = *p.a;
  const int64_t rows = p.group * nq;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = g * p.group + r / nq, i = i0 + r % nq;
    float* row = s + r * s_ld;
    if (a.causal) {
      // Keys after this query's position are masked; the block may end before it.
      const int64_t first_masked = std::max<int64_t>(p.kv_len - a.Lq + i + 1, j0);
      for (int64_t j = first_masked; j < j0 + n; ++j) row[j - j0] = kNegInf;
    }
    if (a.mask) {
      const int64_t* ms = a.mask_strides;
      const int64_t base = b * ms[0] + h * ms[1] + i * ms[2] + j0 * ms[3];
      if (a.mask_dtype == DType::boolean) {
        const auto* m = reinterpret_cast<const uint8_t*>(ptr_at(a.mask, a.mask_dtype, base));
        for (int64_t j = 0; j < n; ++j)
          if (!m[j * ms[3]]) row[j] = kNegInf;
      } else {
        const size_t es = elem_size(a.mask_dtype);
        const char* m = ptr_at(a.mask, a.mask_dtype, base);
        for (int64_t j = 0; j < n; ++j)
          row[j] += load_float(a.mask_dtype, m + j * ms[3] * static_cast<int64_t>(es));
      }
    }
  }
}

// Returns a pointer to n rows of f32 K or V (row length d, row stride *ld): the caller's memory
// when it already is contiguous f32, else a converted copy in buf.
const float* kv_block(const Plan& p, const void* base, const int64_t* st, int64_t b, int64_t g,
                      int64_t j0, int64_t n, int64_t d, int64_t d_ld, std::vector<float>& buf,
                      int64_t* ld) {
  const SdpaArgs& a = *p.a;
  const int64_t off = b * st[0] + g * st[1] + j0 * st[2];
  if (a.kv_dtype == DType::f32 && st[3] == 1) {
    *ld = st[2];
    return static_cast<const float*>(base) + off;
  }
  grow(buf, n * d_ld);
  for (int64_t j = 0; j < n; ++j)
    p.ks->convert(ptr_at(base, a.kv_dtype, off + j * st[2]), a.kv_dtype, st[3], d, 1.0f,
                  buf.data() + j * d_ld);
  *ld = d_ld;
  return buf.data();
}

// One work item: attention for the rows of (b, g, query tile) over the keys of one split.
void run_item(const Plan& p, int64_t item) {
  const SdpaArgs& a = *p.a;
  const attn::KernelSet& ks = *p.ks;
  const int64_t split = item % p.n_splits, base_item = item / p.n_splits;
  const int64_t qt = base_item % p.n_qtiles, bg = base_item / p.n_qtiles;
  const int64_t g = bg % a.Hkv, b = bg / a.Hkv;
  const int64_t i0 = qt * p.q_tile, nq = std::min(p.q_tile, a.Lq - i0);
  const int64_t rows = p.group * nq;
  const int64_t d_pad = p.d_pad, dv_pad = p.dv_pad;

  Scratch& sc = scratch();
  grow(sc.q, rows * d_pad);
  grow(sc.s, rows * kBlockKeys);
  grow(sc.acc, rows * dv_pad);
  grow(sc.m, rows);
  grow(sc.l, rows);
  float *q = sc.q.data(), *s = sc.s.data(), *acc = sc.acc.data();
  float *m = sc.m.data(), *l = sc.l.data();

  // Q rows, pre-multiplied by the scale (so scores come out scaled), zero-padded to d_pad.
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = g * p.group + r / nq, i = i0 + r % nq;
    const int64_t off = b * a.q_strides[0] + h * a.q_strides[1] + i * a.q_strides[2];
    float* qr = q + r * d_pad;
    ks.convert(ptr_at(a.q, a.q_dtype, off), a.q_dtype, a.q_strides[3], a.D, a.scale, qr);
    std::fill(qr + a.D, qr + d_pad, 0.0f);
    m[r] = kNegInf;
    l[r] = 0.0f;
  }
  std::fill(acc, acc + rows * dv_pad, 0.0f);

  int64_t k_begin = split * p.split_keys;
  int64_t k_end = std::min(p.kv_len, k_begin + p.split_keys);
  if (a.causal) k_end = std::min(k_end, p.kv_len - a.Lq + i0 + nq);  // last row's position + 1
  // The first key position masked for *every* row (causal): blocks from there on are partial.
  const int64_t first_partial = a.causal ? p.kv_len - a.Lq + i0 + 1 : k_end;

  for (int64_t j0 = k_begin; j0 < k_end; j0 += kBlockKeys) {
    const int64_t n = std::min(kBlockKeys, k_end - j0), n_pad = round_up(n, kPad);
    int64_t k_ld, v_ld;
    const float* kp = kv_block(p, a.k, a.k_strides, b, g, j0, n, a.D, d_pad, sc.kbuf, &k_ld);
    ks.qk(q, d_pad, rows, kp, k_ld, n, a.D, s, kBlockKeys);
    if (a.mask || (a.causal && j0 + n > first_partial))
      apply_masks(p, b, g, i0, nq, j0, n, s, kBlockKeys);
    if (n_pad > n)
      for (int64_t r = 0; r < rows; ++r)
        std::fill(s + r * kBlockKeys + n, s + r * kBlockKeys + n_pad, kNegInf);
    ks.softmax(s, kBlockKeys, rows, n_pad, m, l, acc, dv_pad);
    const float* vp = kv_block(p, a.v, a.v_strides, b, g, j0, n, a.Dv, dv_pad, sc.vbuf, &v_ld);
    ks.pv(s, kBlockKeys, rows, n, vp, v_ld, a.Dv, acc, dv_pad);
  }

  if (p.n_splits == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t h = g * p.group + r / nq, i = i0 + r % nq;
      const int64_t off = b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
      // A fully masked row has l == 0 and acc == 0: write zeros, not 0/0.
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
      store_row(acc + r * dv_pad, a.Dv, inv, a.out_dtype, a.out, off, a.out_strides[3]);
    }
    return;
  }
  const int64_t rec = dv_pad + 2;
  float* dst = p.partial->data() + item * p.max_rows * rec;
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * rec;
    d[0] = m[r];
    d[1] = l[r];
    std::copy(acc + r * dv_pad, acc + (r + 1) * dv_pad, d + 2);
  }
}

// Combines the splits of one (b, g, query tile) by log-sum-exp and writes the output rows.
void merge_item(const Plan& p, int64_t base_item, std::vector<float>& tmp) {
  const SdpaArgs& a = *p.a;
  const int64_t qt = base_item % p.n_qtiles, bg = base_item / p.n_qtiles;
  const int64_t g = bg % a.Hkv, b = bg / a.Hkv;
  const int64_t i0 = qt * p.q_tile, nq = std::min(p.q_tile, a.Lq - i0);
  const int64_t rows = p.group * nq, rec = p.dv_pad + 2;
  grow(tmp, p.dv_pad);
  for (int64_t r = 0; r < rows; ++r) {
    const float* first = p.partial->data() + (base_item * p.n_splits) * p.max_rows * rec + r * rec;
    float mx = kNegInf;
    for (int64_t sp = 0; sp < p.n_splits; ++sp) mx = std::max(mx, first[sp * p.max_rows * rec]);
    std::fill(tmp.begin(), tmp.begin() + p.dv_pad, 0.0f);
    float total = 0.0f;
    if (mx != kNegInf) {
      for (int64_t sp = 0; sp < p.n_splits; ++sp) {
        const float* part = first + sp * p.max_rows * rec;
        if (part[0] == kNegInf) continue;  // this split saw only masked keys
        const float w = std::exp(part[0] - mx);
        total += w * part[1];
        for (int64_t c = 0; c < a.Dv; ++c) tmp[c] += w * part[2 + c];
      }
    }
    const int64_t h = g * p.group + r / nq, i = i0 + r % nq;
    const int64_t off = b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
    store_row(tmp.data(), a.Dv, total > 0.0f ? 1.0f / total : 0.0f, a.out_dtype, a.out, off,
              a.out_strides[3]);
  }
}

void validate(const SdpaArgs& a) {
  LOOM_CHECK(a.q && a.k && a.v && a.out, "[sdpa] q, k, v and out must not be null");
  LOOM_CHECK(is_half_or_f32(a.q_dtype) && is_half_or_f32(a.kv_dtype) && is_half_or_f32(a.out_dtype),
             "[sdpa] q, k/v and out must be f32, f16 or bf16; got q ", dtype_name(a.q_dtype),
             ", k/v ", dtype_name(a.kv_dtype), ", out ", dtype_name(a.out_dtype));
  LOOM_CHECK(a.B >= 0 && a.Hq >= 0 && a.Lq >= 0 && a.D > 0 && a.Hkv > 0 && a.Lk >= 0 && a.Dv >= 0,
             "[sdpa] bad sizes: B=", a.B, " Hq=", a.Hq, " Lq=", a.Lq, " D=", a.D, " Hkv=", a.Hkv,
             " Lk=", a.Lk, " Dv=", a.Dv);
  LOOM_CHECK(a.Hq % a.Hkv == 0, "[sdpa] q has ", a.Hq, " heads, k/v have ", a.Hkv,
             ": the query heads must be a multiple of the key/value heads");
  LOOM_CHECK(a.kv_len >= -1 && a.kv_len <= a.Lk, "[sdpa] kv_len ", a.kv_len,
             " is outside [0, Lk=", a.Lk, "]");
  if (a.mask)
    LOOM_CHECK(a.mask_dtype == DType::boolean || is_half_or_f32(a.mask_dtype),
               "[sdpa] mask must be bool or f32/f16/bf16, got ", dtype_name(a.mask_dtype));
  LOOM_CHECK(std::isfinite(a.scale), "[sdpa] scale must be finite, got ", a.scale);
}

}  // namespace

void sdpa(const SdpaArgs& a, ThreadPool* pool) {
  validate(a);
  if (a.B == 0 || a.Hq == 0 || a.Lq == 0 || a.Dv == 0) return;

  Plan p{};
  p.a = &a;
  p.ks = &attn::kernels(a.isa);
  p.group = a.Hq / a.Hkv;
  p.kv_len = a.kv_len < 0 ? a.Lk : a.kv_len;
  // Decode (Lq <= 8) keeps all queries in one tile; prefill fills ~kTileRows rows per tile.
  p.q_tile = a.Lq <= 8 ? a.Lq : std::max<int64_t>(1, kTileRows / p.group);
  p.n_qtiles = (a.Lq + p.q_tile - 1) / p.q_tile;
  p.base_items = a.B * a.Hkv * p.n_qtiles;
  p.max_rows = p.group * std::min(p.q_tile, a.Lq);
  p.d_pad = round_up(a.D, kPad);
  p.dv_pad = round_up(a.Dv, kPad);

  // Split keys when there are too few items to keep every thread busy (decode, one head...).
  const int64_t threads = pool ? pool->size() : 1;
  int64_t splits = a.num_splits > 0 ? a.num_splits : 1;
  if (a.num_splits <= 0 && threads > 1 && p.base_items < 4 * threads)
    splits = std::min((4 * threads + p.base_items - 1) / p.base_items,
                      std::max<int64_t>(1, p.kv_len / kMinSplitKeys));
  p.split_keys = round_up(std::max<int64_t>(1, (p.kv_len + splits - 1) / splits), kBlockKeys);
  p.n_splits = std::max<int64_t>(1, (p.kv_len + p.split_keys - 1) / p.split_keys);

  std::vector<float> partial;
  if (p.n_splits > 1)
    partial.resize(static_cast<size_t>(p.base_items * p.n_splits * p.max_rows * (p.dv_pad + 2)));
  p.partial = &partial;

  parallel_for(pool, p.base_items * p.n_splits, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) run_item(p, it);
  });
  if (p.n_splits > 1) {
    parallel_for(pool, p.base_items, 1, [&](int64_t lo, int64_t hi) {
      std::vector<float> tmp;
      for (int64_t it = lo; it < hi; ++it) merge_item(p, it, tmp);
    });
  }
}

}  // namespace loom::cpu
