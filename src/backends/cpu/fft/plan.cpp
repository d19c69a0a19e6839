#include "backends/cpu/fft/plan.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <mutex>
#include <numbers>

#include "loom/kernel.h"
#include "runtime/thread_pool.h"

namespace loom::cpu::fft {
namespace {

constexpr double kTwoPi = 2.0 * std::numbers::pi;

// exp(sign * 2*pi*i * num / den) in double, with num reduced mod den first so large products
// keep their accuracy, then rounded to float.
cf unit_root(int64_t num, int64_t den, double sign) {
  num %= den;
  const double a = sign * kTwoPi * static_cast<double>(num) / static_cast<double>(den);
  return {static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))};
}

// The smallest 2^a 3^b 5^c >= n: the convolution length for Bluestein. Radix 3 and 5 passes are
// cheap, and this is at most ~1.2x n where a power of two can be 2x (4099 -> 8640, not 16384).
int64_t bluestein_length(int64_t n) {
  int64_t best = 1;
  while (best < n) best <<= 1;
  for (int64_t p5 = 1; p5 < best; p5 *= 5)
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t v = p35;
      while (v < n) v <<= 1;
      best = std::min(best, v);
    }
  return best;
}

bool is_prime_small(int p) {
  for (int d = 2; d * d <= p; ++d)
    if (p % d == 0) return false;
  return true;
}

std::shared_ptr<ComplexPlan> build_complex(int64_t n, bool inverse) {
  auto plan = std::make_shared<ComplexPlan>();
  plan->n = n;
  plan->inverse = inverse;
  const double sign = inverse ? 1.0 : -1.0;
  std::vector<int> f = factorize(n);
  if (n > 1 && f.empty()) {
    // Bluestein: the chirp uses k^2 mod 2n, so exp(-i*pi*k^2/n) stays exact for large k.
    plan->bluestein = true;
    const int64_t bn = bluestein_length(2 * n - 1);
    plan->bn = bn;
    plan->chirp.resize(n);
    for (int64_t k = 0; k < n; ++k) plan->chirp[k] = unit_root((k * k) % (2 * n), 2 * n, sign);
    std::vector<cf> b(bn, cf(0.0f, 0.0f));
    for (int64_t k = 0; k < n; ++k) {
      b[k] = std::conj(plan->chirp[k]);
      if (k > 0) b[bn - k] = b[k];
    }
    plan->sub_fwd = complex_plan(bn, false);
    plan->sub_inv = complex_plan(bn, true);
    plan->kernel.resize(bn);
    execute(*plan->sub_fwd, b.data(), plan->kernel.data(), 1.0f / static_cast<float>(bn), nullptr);
    return plan;
  }
  int64_t s = 1;
  for (int p : f) {
    ComplexPlan::Stage st;
    st.p = p;
    st.s = s;
    st.m = n / (s * p);
    const int64_t pm = p * st.m;
    st.tw_jr.resize(2 * (p - 1) * st.m);
    if (s == 1) st.tw_rj.resize(2 * (p - 1) * st.m);
    for (int64_t j = 0; j < st.m; ++j)
      for (int r = 1; r < p; ++r) {
        cf w = unit_root(r * j, pm, sign);
        st.tw_jr[2 * (j * (p - 1) + r - 1)] = w.real();
        st.tw_jr[2 * (j * (p - 1) + r - 1) + 1] = w.imag();
        if (s == 1) {
          st.tw_rj[2 * ((r - 1) * st.m + j)] = w.real();
          st.tw_rj[2 * ((r - 1) * st.m + j) + 1] = w.imag();
        }
      }
    st.trig.resize(2 * p);
    for (int t = 0; t < p; ++t) {
      st.trig[2 * t] = static_cast<float>(std::cos(kTwoPi * t / p));
      st.trig[2 * t + 1] = static_cast<float>(std::sin(kTwoPi * t / p));
    }
    plan->stages.push_back(std::move(st));
    s *= p;
  }
  return plan;
}

std::shared_ptr<RealPlan> build_real(int64_t n, bool inverse) {
  auto plan = std::make_shared<RealPlan>();
  plan->n = n;
  if (n % 2 == 0) {
    plan->half = complex_plan(n / 2, inverse);
    plan->tw.resize(n / 2 + 1);
    for (int64_t k = 0; k <= n / 2; ++k) plan->tw[k] = unit_root(k, n, -1.0);
  } else {
    plan->full = complex_plan(n, inverse);
  }
  return plan;
}

// A bounded cache shared by all threads. Plans are handed out as shared_ptr so an evicted plan
// stays alive for the calls still using it. Lookups are a short critical section; building
// happens outside the lock (two threads may build the same plan once; the first one wins).
template <class P>
class PlanCache {
 public:
  using Key = std::pair<int64_t, int>;
  template <class Build>
  std::shared_ptr<const P> get(Key key, Build&& build) {
    {
      std::lock_guard lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) return it->second;
    }
    std::shared_ptr<const P> plan = build();
    std::lock_guard lock(mu_);
    auto [it, inserted] = map_.emplace(key, plan);
    if (!inserted) return it->second;
    order_.push_back(key);
    if (order_.size() > kCapacity) {
      map_.erase(order_.front());
      order_.pop_front();
    }
    return plan;
  }

 private:
  static constexpr size_t kCapacity = 128;
  std::mutex mu_;
  std::map<Key, std::shared_ptr<const P>> map_;
  std::list<Key> order_;
};

PlanCache<ComplexPlan>& complex_cache() {
  static PlanCache<ComplexPlan> c;
  return c;
}
PlanCache<RealPlan>& real_cache() {
  static PlanCache<RealPlan> c;
  return c;
}

// Per-thread scratch that only grows: batches of transforms reuse it without allocating.
cf* scratch(std::vector<cf>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}
thread_local std::vector<cf> tl_work, tl_blue_a, tl_blue_b;

void execute_bluestein(const ComplexPlan& pl, const cf* in, cf* out, float scale,
                       ThreadPool* pool) {
  const int64_t n = pl.n, bn = pl.bn;
  cf* a = scratch(tl_blue_a, bn);
  cf* b = scratch(tl_blue_b, bn);
  for (int64_t k = 0; k < n; ++k) a[k] = in[k] * pl.chirp[k];
  std::fill(a + n, a + bn, cf(0.0f, 0.0f));
  execute(*pl.sub_fwd, a, b, 1.0f, pool);
  for (int64_t k = 0; k < bn; ++k) b[k] *= pl.kernel[k];
  execute(*pl.sub_inv, b, a, 1.0f, pool);
  for (int64_t k = 0; k < n; ++k) out[k] = a[k] * pl.chirp[k] * scale;
}

int hardware_threads(ThreadPool* pool) { return pool ? pool->size() : 1; }

}  // namespace

std::vector<int> factorize(int64_t n) {
  std::vector<int> f;
  if (n <= 1) return f;
  int64_t r = n;
  int twos = 0;
  while (r % 2 == 0) {
    r /= 2;
    ++twos;
  }
  std::vector<int> odd;
  for (int p : {3, 5, 7}) {
    while (r % p == 0) {
      odd.push_back(p);
      r /= p;
    }
  }
  for (int p = 11; p <= kMaxGenericRadix && r > 1; p += 2) {
    if (!is_prime_small(p)) continue;
    while (r % p == 0) {
      odd.push_back(p);
      r /= p;
    }
  }
  if (r > 1) return {};  // a prime factor above kMaxGenericRadix: Bluestein
  // Radix 8 where possible (fewest passes over memory); a leftover 2 turns one 8 into 4 * 4.
  int eights = twos / 3, rest = twos % 3;
  if (rest == 1 && eights > 0) {
    --eights;
    f.push_back(4);
    f.push_back(4);
    rest = 0;
  }
  for (int i = 0; i < eights; ++i) f.push_back(8);
  if (rest == 2) f.push_back(4);
  if (rest == 1) f.push_back(2);
  // The first pass (s == 1) is the one with the transposed store; 8 and 4 have the cheap one.
  std::sort(f.begin(), f.end(), [](int a, int b) { return a > b; });
  f.insert(f.end(), odd.begin(), odd.end());
  return f;
}

std::shared_ptr<const ComplexPlan> complex_plan(int64_t n, bool inverse) {
  return complex_cache().get({n, inverse ? 1 : 0}, [&] { return build_complex(n, inverse); });
}

std::shared_ptr<const RealPlan> real_plan(int64_t n, bool inverse) {
  return real_cache().get({n, inverse ? 1 : 0}, [&] { return build_real(n, inverse); });
}

void execute(const ComplexPlan& pl, const cf* in, cf* out, float scale, ThreadPool* pool) {
  const int64_t n = pl.n;
  if (pl.bluestein) return execute_bluestein(pl, in, out, scale, pool);
  const int L = static_cast<int>(pl.stages.size());
  if (L == 0) {
    out[0] = in[0] * scale;
    return;
  }
  StageFn fn = active_stage_fn();
  cf* work = scratch(tl_work, n);
  const int threads = hardware_threads(pool);
  const float* src = reinterpret_cast<const float*>(in);
  for (int i = 0; i < L; ++i) {
    // Ping-pong so that the last pass lands in `out`.
    float* dst = reinterpret_cast<float*>(((L - 1 - i) % 2 == 0) ? out : work);
    const StageView st = pl.stages[i].view();
    const float sc = i == L - 1 ? scale : 1.0f;
    const bool inv = pl.inverse;
    if (threads > 1 && n >= (1 << 15)) {
      // One big transform: split the pass over j (groups) or, late passes, over k (columns).
      if (st.m >= st.s) {
        const int64_t grain = std::max<int64_t>(1, 8192 / (st.p * st.s));
        parallel_for(pool, st.m, grain,
                     [&](int64_t b, int64_t e) { fn(st, src, dst, b, e, 0, st.s, inv, sc); });
      } else {
        const int64_t blocks = st.s / 16;
        parallel_for(pool, blocks, std::max<int64_t>(1, 512 / (st.p * st.m)),
                     [&](int64_t b, int64_t e) {
                       fn(st, src, dst, 0, st.m, b * 16, e == blocks ? st.s : e * 16, inv, sc);
                     });
      }
    } else {
      fn(st, src, dst, 0, st.m, 0, st.s, inv, sc);
    }
    src = dst;
  }
}

}  // namespace loom::cpu::fft
