// Fused CPU SDPA vs the same attention composed naively (OpenBLAS sgemm for QK^T and PV, a
// softmax loop between them, Lq x Lk scores materialised), measured in the same run, and a
// streaming-read probe that gives the memory-bandwidth floor for decode.
//
// Counters: GFLOP/s counts 2*D + 2*Dv flops per attended (query, key) pair (causal pairs only,
// for both kernels, so the ratio is a time ratio); KV_GB/s is K+V bytes read per second.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/attention/sdpa.h"
#include "loom/dtype.h"
#include "loom/kernel.h"
#include "runtime/thread_pool.h"

namespace {

using loom::DType;
using loom::cpu::SdpaArgs;

loom::ThreadPool& pool() {
  static loom::ThreadPool p(0);  // all hardware threads, like OpenBLAS
  return p;
}

struct Shape {
  int64_t Hq, Hkv, Lq, Lk, D;
  bool causal;
};

double attended_pairs(const Shape& s) {
  if (!s.causal) return static_cast<double>(s.Lq) * s.Lk;
  double n = 0;
  for (int64_t i = 0; i < s.Lq; ++i) n += static_cast<double>(s.Lk - s.Lq + i + 1);
  return n;
}

// Inputs for `copies` independent K/V caches (decode rotates through them so K/V come from DRAM,
// as each layer's cache would, instead of staying in the 32 MiB L3).
struct Data {
  std::vector<float> q, out;
  std::vector<std::vector<uint8_t>> k, v;
  Data(const Shape& s, DType kv_dt, int copies) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    q.resize(static_cast<size_t>(s.Hq * s.Lq * s.D));
    out.resize(q.size());
    for (auto& x : q) x = u(rng);
    const size_t n = static_cast<size_t>(s.Hkv * s.Lk * s.D), es = kv_dt == DType::f32 ? 4 : 2;
    for (int c = 0; c < copies; ++c) {
      for (auto* t : {&k, &v}) {
        t->emplace_back(n * es);
        for (size_t i = 0; i < n; ++i) {
          float f = u(rng);
          if (es == 4)
            std::memcpy(t->back().data() + 4 * i, &f, 4);
          else {
            uint16_t h = kv_dt == DType::f16 ? loom::f32_to_f16(f) : loom::f32_to_bf16(f);
            std::memcpy(t->back().data() + 2 * i, &h, 2);
          }
        }
      }
    }
  }
};

SdpaArgs args(const Shape& s, Data& d, DType kv_dt, int c) {
  SdpaArgs a;
  a.q = d.q.data();
  a.B = 1, a.Hq = s.Hq, a.Lq = s.Lq, a.D = s.D;
  int64_t qd[4] = {1, s.Hq, s.Lq, s.D}, kd[4] = {1, s.Hkv, s.Lk, s.D};
  loom::cpu::contiguous_strides(qd, a.q_strides);
  a.k = d.k[c].data();
  a.v = d.v[c].data();
  a.kv_dtype = kv_dt;
  a.Hkv = s.Hkv, a.Lk = s.Lk, a.Dv = s.D;
  loom::cpu::contiguous_strides(kd, a.k_strides);
  loom::cpu::contiguous_strides(kd, a.v_strides);
  a.causal = s.causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  a.out = d.out.data();
  loom::cpu::contiguous_strides(qd, a.out_strides);
  return a;
}

void report(benchmark::State& st, const Shape& s, size_t kv_bytes) {
  const double flops = attended_pairs(s) * s.Hq * 4.0 * s.D;
  st.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["KV_GB"] =
      benchmark::Counter(kv_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_fused(benchmark::State& st, Shape s, DType kv_dt, int copies, bool threads = true) {
  Data d(s, kv_dt, copies);
  int c = 0;
  for (auto _ : st) {
    SdpaArgs a = args(s, d, kv_dt, c);
    loom::cpu::sdpa(a, threads ? &pool() : nullptr);
    benchmark::DoNotOptimize(d.out.data());
    c = (c + 1) % copies;
  }
  report(st, s, 2 * d.k[0].size());
}

// The composition an exporter writes: S = Q K^T (sgemm, all Lq x Lk scores, one kv head's query
// heads stacked as rows), scale + causal mask + softmax in a loop, O = P V (sgemm). f32 only.
void run_naive(benchmark::State& st, Shape s, int copies) {
  Data d(s, DType::f32, copies);
  const int64_t group = s.Hq / s.Hkv, rows = group * s.Lq;
  std::vector<float> scores(static_cast<size_t>(rows * s.Lk));
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  int c = 0;
  for (auto _ : st) {
    const float* K = reinterpret_cast<const float*>(d.k[c].data());
    const float* V = reinterpret_cast<const float*>(d.v[c].data());
    for (int64_t g = 0; g < s.Hkv; ++g) {
      const float* q = d.q.data() + g * rows * s.D;  // heads g*group.. are contiguous rows
      const float* k = K + g * s.Lk * s.D;
      const float* v = V + g * s.Lk * s.D;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, s.Lk, s.D, scale, q, s.D, k, s.D,
                  0.f, scores.data(), s.Lk);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = scores.data() + r * s.Lk;
        const int64_t last = s.causal ? s.Lk - s.Lq + r % s.Lq : s.Lk - 1;
        float mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= last; ++j) mx = std::max(mx, row[j]);
        for (int64_t j = 0; j <= last; ++j) sum += (row[j] = std::exp(row[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= last; ++j) row[j] *= inv;
        for (int64_t j = last + 1; j < s.Lk; ++j) row[j] = 0.f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s.D, s.Lk, 1.f, scores.data(),
                  s.Lk, v, s.D, 0.f, d.out.data() + g * rows * s.D, s.D);
    }
    benchmark::DoNotOptimize(d.out.data());
    c = (c + 1) % copies;
  }
  report(st, s, 2 * d.k[0].size());
}

const Shape kPrefillSmall{9, 9, 512, 512, 64, true};
const Shape kPrefillLarge{32, 32, 2048, 2048, 128, true};
const Shape kDecode{32, 8, 1, 4096, 128, false};
constexpr int kDecodeCopies = 8;  // 8 x 33.5 MB (f32) >> L3

void BM_Fused_Prefill_H9_L512_D64(benchmark::State& st) {
  run_fused(st, kPrefillSmall, DType::f32, 1);
}
void BM_Naive_Prefill_H9_L512_D64(benchmark::State& st) { run_naive(st, kPrefillSmall, 1); }
void BM_Fused_Prefill_H32_L2048_D128(benchmark::State& st) {
  run_fused(st, kPrefillLarge, DType::f32, 1);
}
void BM_Naive_Prefill_H32_L2048_D128(benchmark::State& st) { run_naive(st, kPrefillLarge, 1); }
void BM_Fused_Decode_f32(benchmark::State& st) {
  run_fused(st, kDecode, DType::f32, kDecodeCopies);
}
void BM_Fused_Decode_f16(benchmark::State& st) {
  run_fused(st, kDecode, DType::f16, kDecodeCopies);
}
void BM_Fused_Decode_bf16(benchmark::State& st) {
  run_fused(st, kDecode, DType::bf16, kDecodeCopies);
}
void BM_Fused_Decode_f32_1thread(benchmark::State& st) {
  run_fused(st, kDecode, DType::f32, kDecodeCopies, false);
}
void BM_Fused_Decode_f16_1thread(benchmark::State& st) {
  run_fused(st, kDecode, DType::f16, kDecodeCopies, false);
}
void BM_Naive_Decode_f32(benchmark::State& st) { run_naive(st, kDecode, kDecodeCopies); }

// Streaming read of 512 MiB on all threads: the DRAM bandwidth that bounds decode.
void BM_MemoryRead(benchmark::State& st) {
  static std::vector<float> buf(size_t{128} << 20, 1.0f);
  const int64_t chunks = 256, per = static_cast<int64_t>(buf.size()) / chunks;
  for (auto _ : st) {
    std::vector<float> part(chunks, 0.f);
    loom::parallel_for(&pool(), chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        const float* p = buf.data() + c * per;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        for (int64_t i = 0; i < per; i += 8) {
          s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
          s4 += p[i + 4], s5 += p[i + 5], s6 += p[i + 6], s7 += p[i + 7];
        }
        part[c] = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
      }
    });
    benchmark::DoNotOptimize(part.data());
  }
  st.counters["GB"] =
      benchmark::Counter(buf.size() * 4e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_Fused_Prefill_H9_L512_D64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Naive_Prefill_H9_L512_D64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Fused_Prefill_H32_L2048_D128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Naive_Prefill_H32_L2048_D128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Fused_Decode_f32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fused_Decode_f16)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fused_Decode_bf16)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fused_Decode_f32_1thread)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fused_Decode_f16_1thread)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Naive_Decode_f32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MemoryRead)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
