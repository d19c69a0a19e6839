#include "backends/cpu/fft/fft.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backends/cpu/fft/plan.h"
#include "loom/error.h"
#include "loom/kernel.h"
#include "runtime/thread_pool.h"

namespace loom::cpu::fft {
namespace {

// ---- instruction-set dispatch -------------------------------------------------------------

struct IsaEntry {
  const char* name;
  StageFn fn;
  RealFn post, pre;
  bool (*supported)();
};

bool always() { return true; }
#if defined(__x86_64__) || defined(__i386__)
bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}
#endif

const IsaEntry kIsas[] = {
#if defined(__x86_64__) || defined(__i386__)
    {"avx512", avx512::run_stage, avx512::real_post, avx512::real_pre, has_avx512},
    {"avx2", avx2::run_stage, avx2::real_post, avx2::real_pre, has_avx2},
#endif
    {"scalar", scalar::run_stage, scalar::real_post, scalar::real_pre, always},
};

const IsaEntry* find_isa(const char* name) {
  for (const IsaEntry& e : kIsas)
    if (std::strcmp(e.name, name) == 0 && e.supported()) return &e;
  return nullptr;
}

const IsaEntry* default_isa() {
  if (const char* env = std::getenv("LOOM_FFT_ISA"))
    if (const IsaEntry* e = find_isa(env)) return e;
  for (const IsaEntry& e : kIsas)
    if (e.supported()) return &e;
  return &kIsas[0];
}

std::atomic<const IsaEntry*>& current_isa() {
  static std::atomic<const IsaEntry*> isa{default_isa()};
  return isa;
}

// ---- helpers ------------------------------------------------------------------------------

float scale_for(Scaling s, int64_t n) {
  switch (s) {
    case Scaling::none:
      return 1.0f;
    case Scaling::size:
      return static_cast<float>(1.0 / static_cast<double>(n));
    case Scaling::unitary:
      return static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  }
  return 1.0f;
}

template <class T>
T* scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}
thread_local std::vector<cf> tl_in, tl_out;
thread_local std::vector<float> tl_real;

int pool_threads(ThreadPool* pool) { return pool ? pool->size() : 1; }

void check_common(const char* what, const void* in, const void* out, int64_t n, int64_t count) {
  LOOM_CHECK(n > 0, "[fft] ", what, ": transform length must be positive, got ", n);
  LOOM_CHECK(count >= 0, "[fft] ", what, ": batch count must be >= 0, got ", count);
  LOOM_CHECK(count == 0 || (in != nullptr && out != nullptr), "[fft] ", what,
             ": null input or output pointer");
}

// Runs body(b) for every transform of a batch: over threads when there are several transforms,
// or serially with the pool handed to the transform when one large transform can use it.
template <class Body>
void for_batch(ThreadPool* pool, int64_t count, int64_t n, const Body& body) {
  const int threads = pool_threads(pool);
  if (threads > 1 && count < 2 * threads && n >= (1 << 15)) {
    for (int64_t b = 0; b < count; ++b) body(b, pool);
    return;
  }
  // About 64k complex values per chunk keeps scheduling overhead small for tiny transforms.
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / n);
  parallel_for(pool, count, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b, nullptr);
  });
}

// One complex transform with arbitrary strides.
void c2c_one(const ComplexPlan& plan, const cf* in, int64_t is, cf* out, int64_t os, float scale,
             ThreadPool* pool) {
  const int64_t n = plan.n;
  const cf* src = in;
  if (is != 1 || (in == out && os == 1)) {
    cf* t = scratch(tl_in, n);
    for (int64_t j = 0; j < n; ++j) t[j] = in[j * is];
    src = t;
  }
  cf* dst = os == 1 ? out : scratch(tl_out, n);
  execute(plan, src, dst, scale, pool);
  if (dst != out)
    for (int64_t j = 0; j < n; ++j) out[j * os] = dst[j];
}

// X[k] = (a + conj b)/2 - i/2 * W^k (a - conj b), a = Z[k], b = Z[h-k], Z[h] = Z[0]: the half
// spectrum of n reals from the length-h transform of their even/odd pairs. Works in place
// (z == x, xs == 1) because each pair (k, h-k) is read before it is written.
void r2c_post(const cf* z, cf* x, int64_t xs, const cf* tw, int64_t h, float scale) {
  const cf z0 = z[0];
  int64_t k0 = 1;
  if (xs == 1)
    k0 = current_isa()
             .load(std::memory_order_relaxed)
             ->post(reinterpret_cast<const float*>(z), reinterpret_cast<float*>(x),
                    reinterpret_cast<const float*>(tw), h, scale);
  for (int64_t k = k0; 2 * k <= h; ++k) {
    const cf a = z[k], b = z[h - k];
    const cf e = a + std::conj(b), d = a - std::conj(b);
    const cf twd = tw[k] * d;
    const cf xk = 0.5f * scale * cf(e.real() + twd.imag(), e.imag() - twd.real());
    if (2 * k < h) {
      const cf e2 = std::conj(e), d2 = -std::conj(d);
      const cf twd2 = tw[h - k] * d2;
      x[(h - k) * xs] = 0.5f * scale * cf(e2.real() + twd2.imag(), e2.imag() - twd2.real());
    }
    x[k * xs] = xk;
  }
  x[0] = cf((z0.real() + z0.imag()) * scale, 0.0f);
  x[h * xs] = cf((z0.real() - z0.imag()) * scale, 0.0f);
}

// Inverse of r2c_post (times 2, as the unnormalised c2r needs): Z[k] = (X[k] + conj X[h-k]) +
// i * conj(W^k) * (X[k] - conj X[h-k]); the imaginary parts of X[0] and X[h] are dropped.
void c2r_pre(const cf* x, int64_t xs, cf* z, const cf* tw, int64_t h, float scale) {
  const float x0 = x[0].real(), xh = x[h * xs].real();
  z[0] = cf((x0 + xh) * scale, (x0 - xh) * scale);
  int64_t k0 = 1;
  if (xs == 1)
    k0 = current_isa()
             .load(std::memory_order_relaxed)
             ->pre(reinterpret_cast<const float*>(x), reinterpret_cast<float*>(z),
                   reinterpret_cast<const float*>(tw), h, scale);
  for (int64_t k = k0; k <= h - k0; ++k) {
    const cf a = x[k * xs], b = std::conj(x[(h - k) * xs]);
    const cf e = a + b, d = std::conj(tw[k]) * (a - b);
    z[k] = scale * cf(e.real() - d.imag(), e.imag() + d.real());
  }
}

void r2c_one(const RealPlan& plan, const float* in, int64_t is, cf* out, int64_t os, float scale,
             ThreadPool* pool) {
  const int64_t n = plan.n;
  if (plan.half) {
    const int64_t h = n / 2;
    const float* src = in;
    if (is != 1) {
      float* t = scratch(tl_real, n);
      for (int64_t j = 0; j < n; ++j) t[j] = in[j * is];
      src = t;
    }
    cf* z = os == 1 ? out : scratch(tl_out, h);
    execute(*plan.half, reinterpret_cast<const cf*>(src), z, 1.0f, pool);
    r2c_post(z, out, os, plan.tw.data(), h, scale);
    return;
  }
  // Odd n: the complex transform of the real signal, keeping its first n/2+1 bins.
  cf* t = scratch(tl_in, n);
  for (int64_t j = 0; j < n; ++j) t[j] = cf(in[j * is], 0.0f);
  cf* o = scratch(tl_out, n);
  execute(*plan.full, t, o, scale, pool);
  for (int64_t k = 0; k <= n / 2; ++k) out[k * os] = o[k];
}

void c2r_one(const RealPlan& plan, const cf* in, int64_t is, float* out, int64_t os, float scale,
             ThreadPool* pool) {
  const int64_t n = plan.n;
  if (plan.half) {
    const int64_t h = n / 2;
    cf* z = scratch(tl_in, h);
    c2r_pre(in, is, z, plan.tw.data(), h, scale);
    cf* dst = os == 1 ? reinterpret_cast<cf*>(out) : scratch(tl_out, h);
    execute(*plan.half, z, dst, 1.0f, pool);
    if (os != 1) {
      for (int64_t k = 0; k < h; ++k) {
        out[2 * k * os] = dst[k].real();
        out[(2 * k + 1) * os] = dst[k].imag();
      }
    }
    return;
  }
  // Odd n: rebuild the full Hermitian spectrum and take the real part of its inverse.
  cf* t = scratch(tl_in, n);
  t[0] = cf(in[0].real(), 0.0f);
  for (int64_t k = 1; k <= n / 2; ++k) {
    t[k] = in[k * is];
    t[n - k] = std::conj(t[k]);
  }
  cf* o = scratch(tl_out, n);
  execute(*plan.full, t, o, scale, pool);
  for (int64_t j = 0; j < n; ++j) out[j * os] = o[j].real();
}

// ---- N-D ----------------------------------------------------------------------------------

std::vector<int> normalize_axes(std::span<const int> axes, size_t rank, const char* what) {
  LOOM_CHECK(!axes.empty(), "[fft] ", what, ": no axes given");
  std::vector<int> out;
  for (int a : axes) {
    const int r = static_cast<int>(rank);
    LOOM_CHECK(a >= -r && a < r, "[fft] ", what, ": axis ", a, " out of range for rank ", rank);
    const int na = a < 0 ? a + r : a;
    LOOM_CHECK(std::find(out.begin(), out.end(), na) == out.end(), "[fft] ", what, ": axis ", a,
               " listed twice");
    out.push_back(na);
  }
  return out;
}

// Element offsets (for two stride sets) of every index of `shape` with axis `skip` held at 0.
void offsets_except(std::span<const int64_t> shape, int skip, std::span<const int64_t> s1,
                    std::span<const int64_t> s2, std::vector<int64_t>& o1,
                    std::vector<int64_t>& o2) {
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (static_cast<int>(d) != skip) count *= shape[d];
  o1.assign(count, 0);
  o2.assign(count, 0);
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t a = 0, b = 0;
  for (int64_t c = 0; c < count; ++c) {
    o1[c] = a;
    o2[c] = b;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (d == skip) continue;
      if (++idx[d] < shape[d]) {
        a += s1[d];
        b += s2[d];
        break;
      }
      a -= s1[d] * (shape[d] - 1);
      b -= s2[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

void check_nd(const char* what, size_t rank, std::span<const int64_t> s1,
              std::span<const int64_t> s2, const void* in, const void* out) {
  LOOM_CHECK(s1.size() == rank && s2.size() == rank, "[fft] ", what, ": rank ", rank,
             " shape with ", s1.size(), " input and ", s2.size(), " output strides");
  LOOM_CHECK(in != nullptr && out != nullptr, "[fft] ", what, ": null input or output pointer");
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------

StageFn active_stage_fn() { return current_isa().load(std::memory_order_relaxed)->fn; }

const char* isa_name() { return current_isa().load()->name; }

bool set_isa(const char* name) {
  const IsaEntry* e = find_isa(name);
  if (!e) return false;
  current_isa().store(e);
  return true;
}

void c2c(const cf* in, int64_t in_stride, int64_t in_dist, cf* out, int64_t out_stride,
         int64_t out_dist, int64_t n, int64_t count, bool inverse, Scaling s, ThreadPool* pool) {
  check_common(inverse ? "ifft" : "fft", in, out, n, count);
  if (count == 0) return;
  auto plan = complex_plan(n, inverse);
  const float scale = scale_for(s, n);
  for_batch(pool, count, n, [&](int64_t b, ThreadPool* p) {
    c2c_one(*plan, in + b * in_dist, in_stride, out + b * out_dist, out_stride, scale, p);
  });
}

void r2c(const float* in, int64_t in_stride, int64_t in_dist, cf* out, int64_t out_stride,
         int64_t out_dist, int64_t n, int64_t count, Scaling s, ThreadPool* pool) {
  check_common("rfft", in, out, n, count);
  if (count == 0) return;
  auto plan = real_plan(n, false);
  const float scale = scale_for(s, n);
  for_batch(pool, count, n, [&](int64_t b, ThreadPool* p) {
    r2c_one(*plan, in + b * in_dist, in_stride, out + b * out_dist, out_stride, scale, p);
  });
}

void c2r(const cf* in, int64_t in_stride, int64_t in_dist, float* out, int64_t out_stride,
         int64_t out_dist, int64_t n, int64_t count, Scaling s, ThreadPool* pool) {
  check_common("irfft", in, out, n, count);
  if (count == 0) return;
  auto plan = real_plan(n, true);
  const float scale = scale_for(s, n);
  for_batch(pool, count, n, [&](int64_t b, ThreadPool* p) {
    c2r_one(*plan, in + b * in_dist, in_stride, out + b * out_dist, out_stride, scale, p);
  });
}

void c2c_nd(const cf* in, std::span<const int64_t> in_strides, cf* out,
            std::span<const int64_t> out_strides, std::span<const int64_t> shape,
            std::span<const int> axes, bool inverse, Scaling s, ThreadPool* pool) {
  const char* what = inverse ? "ifftn" : "fftn";
  check_nd(what, shape.size(), in_strides, out_strides, in, out);
  std::vector<int> ax = normalize_axes(axes, shape.size(), what);
  for (int a : ax) LOOM_CHECK(shape[a] > 0, "[fft] ", what, ": axis ", a, " is empty");
  for (int64_t d : shape)
    if (d == 0) return;
  std::vector<int64_t> oi, oo;
  const cf* src = in;
  std::span<const int64_t> src_strides = in_strides;
  for (int a : ax) {
    offsets_except(shape, a, src_strides, out_strides, oi, oo);
    const int64_t n = shape[a];
    auto plan = complex_plan(n, inverse);
    const float scale = scale_for(s, n);
    const int64_t is = src_strides[a], os = out_strides[a];
    for_batch(pool, static_cast<int64_t>(oi.size()), n, [&](int64_t b, ThreadPool* p) {
      c2c_one(*plan, src + oi[b], is, out + oo[b], os, scale, p);
    });
    src = out;  // later axes transform the output in place
    src_strides = out_strides;
  }
}

void r2c_nd(const float* in, std::span<const int64_t> in_strides, cf* out,
            std::span<const int64_t> out_strides, std::span<const int64_t> shape,
            std::span<const int> axes, Scaling s, ThreadPool* pool) {
  check_nd("rfftn", shape.size(), in_strides, out_strides, in, out);
  std::vector<int> ax = normalize_axes(axes, shape.size(), "rfftn");
  for (int a : ax) LOOM_CHECK(shape[a] > 0, "[fft] rfftn: axis ", a, " is empty");
  for (int64_t d : shape)
    if (d == 0) return;
  const int last = ax.back();
  std::vector<int64_t> oi, oo;
  offsets_except(shape, last, in_strides, out_strides, oi, oo);
  const int64_t n = shape[last];
  auto plan = real_plan(n, false);
  const float scale = scale_for(s, n);
  const int64_t is = in_strides[last], os = out_strides[last];
  for_batch(pool, static_cast<int64_t>(oi.size()), n, [&](int64_t b, ThreadPool* p) {
    r2c_one(*plan, in + oi[b], is, out + oo[b], os, scale, p);
  });
  if (ax.size() > 1) {
    std::vector<int64_t> cshape(shape.begin(), shape.end());
    cshape[last] = n / 2 + 1;
    std::vector<int> rest(ax.begin(), ax.end() - 1);
    c2c_nd(out, out_strides, out, out_strides, cshape, rest, false, s, pool);
  }
}

void c2r_nd(const cf* in, std::span<const int64_t> in_strides, float* out,
            std::span<const int64_t> out_strides, std::span<const int64_t> shape,
            std::span<const int> axes, Scaling s, ThreadPool* pool) {
  check_nd("irfftn", shape.size(), in_strides, out_strides, in, out);
  std::vector<int> ax = normalize_axes(axes, shape.size(), "irfftn");
  for (int a : ax) LOOM_CHECK(shape[a] > 0, "[fft] irfftn: axis ", a, " is empty");
  for (int64_t d : shape)
    if (d == 0) return;
  const int last = ax.back();
  const int64_t n = shape[last];
  std::vector<int64_t> cshape(shape.begin(), shape.end());
  cshape[last] = n / 2 + 1;
  // The complex axes first, into a contiguous temporary so the input stays untouched.
  const cf* src = in;
  std::vector<int64_t> src_strides(in_strides.begin(), in_strides.end());
  std::vector<cf> tmp;
  if (ax.size() > 1) {
    int64_t total = 1;
    for (int64_t d : cshape) total *= d;
    tmp.resize(total);
    std::vector<int64_t> ts(cshape.size());
    int64_t st = 1;
    for (int d = static_cast<int>(cshape.size()) - 1; d >= 0; --d) {
      ts[d] = st;
      st *= cshape[d];
    }
    std::vector<int> rest(ax.begin(), ax.end() - 1);
    c2c_nd(in, in_strides, tmp.data(), ts, cshape, rest, true, s, pool);
    src = tmp.data();
    src_strides = ts;
  }
  std::vector<int64_t> oi, oo;
  offsets_except(shape, last, src_strides, out_strides, oi, oo);
  auto plan = real_plan(n, true);
  const float scale = scale_for(s, n);
  const int64_t is = src_strides[last], os = out_strides[last];
  for_batch(pool, static_cast<int64_t>(oi.size()), n, [&](int64_t b, ThreadPool* p) {
    c2r_one(*plan, src + oi[b], is, out + oo[b], os, scale, p);
  });
}

}  // namespace loom::cpu::fft
