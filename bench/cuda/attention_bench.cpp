// CUDA sdpa (issue 10): flash prefill and split-KV decode, timed with CUDA events on random
// inputs (never zeros). Prefill: the default dispatch (cuDNN's fused attention where it loads),
// the cuDNN path forced ("cudnn"), Loom's flash kernel with its default tile ("flash default") and
// every flash tile configuration, median of event-bracketed launches after warm-up,
// TFLOP/s = 4*B*H*S*S*D (halved when causal) / time.
// Decode: a CUDA graph of many launches replayed (no launch gaps), the K/V read from a rotation
// of buffer sets larger than the L2 ("cold", as in a real model where each layer's cache is read
// once per token) and from one set ("hot", the L2-resident figure PyTorch's peer script measured).
// Writes one CSV row per measurement to argv[1] (default attention_loom.csv); bench/cuda/
// sdpa_peer.py reads it and prints the table against torch's SDPA backends.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#ifdef LOOM_BENCH_CUPTI
#include "kernel_trace.h"
#endif
#include "backends/cuda/attention_cudnn.h"
#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_common.h"
#include "loom/loom.h"

using namespace loom;
namespace cu = loom::backends::cuda;

namespace {

#define CK(x)                                                                           \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median microseconds per launch over `iters` event-bracketed launches, after `warm`.
double time_events(const std::function<void()>& fn, int warm, int iters) {
  cudaStream_t s = cu::stream(0);
  for (int i = 0; i < warm; ++i) fn();
  CK(cudaStreamSynchronize(s));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    CK(cudaEventRecord(e0, s));
    fn();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e3);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return median(t);
}

// Short kernels: `per_graph` launches (fn(i) issues launch i) captured in one CUDA graph, replayed
// `reps` times; median microseconds per launch. With `trace` (and CUPTI), one more replay is
// traced and its kernels printed: what each adds to a launch's time (kernel_trace.h).
double time_graph(const std::function<void(int)>& fn, int per_graph, int reps, bool trace = false) {
  cudaStream_t s = cu::stream(0);
  fn(0);  // warm: module load, scratch cached by the allocator before the capture
  CK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  for (int i = 0; i < per_graph; ++i) fn(i);
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, s));
  CK(cudaStreamSynchronize(s));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(e0, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e3 / per_graph);
  }
#ifdef LOOM_BENCH_CUPTI
  if (trace && bench::KernelTrace::start()) {
    CK(cudaGraphLaunch(ge, s));  // instrumented again by CUPTI: not traced
    CK(cudaStreamSynchronize(s));
    bench::KernelTrace::mark();
    CK(cudaGraphLaunch(ge, s));
    CK(cudaStreamSynchronize(s));
    std::printf("  one replay, kernel by kernel (CUPTI; per launch):\n%s",
                bench::KernelTrace::summary(bench::KernelTrace::stop(), per_graph).c_str());
  }
#else
  (void)trace;
#endif
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return median(t);
}

NDArray dev_random(Shape s, DType t, double lo, double hi, uint64_t seed) {
  return to_device(random_uniform(std::move(s), t, lo, hi, seed), Device::cuda(0));
}

const char* dname(DType t) { return t == f16 ? "f16" : t == bf16 ? "bf16" : "f32"; }

FILE* g_csv = nullptr;
void row(const char* kind, const std::string& shape, DType t, bool causal, const std::string& what,
         double us, double metric) {
  std::printf("%-8s %-34s %-5s %-6s %-26s %10.1f us %9.1f\n", kind, shape.c_str(), dname(t),
              causal ? "causal" : "-", what.c_str(), us, metric);
  std::fprintf(g_csv, "%s,%s,%s,%d,%s,%.3f,%.3f\n", kind, shape.c_str(), dname(t), causal ? 1 : 0,
               what.c_str(), us, metric);
  std::fflush(g_csv);
}

void prefill(int64_t B, int64_t H, int64_t S, int64_t D, DType t, bool baseline) {
  NDArray q = dev_random({B, H, S, D}, t, -2, 2, 1), k = dev_random({B, H, S, D}, t, -2, 2, 2);
  NDArray v = dev_random({B, H, S, D}, t, -1, 1, 3), o = dev_random({B, H, S, D}, t, -1, 1, 4);
  cu::SdpaLaunch a;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = o.data();
  a.q_dtype = a.kv_dtype = a.out_dtype = t;
  a.B = B, a.Hq = a.Hkv = H, a.Lq = a.Lk = S, a.D = a.Dv = D;
  a.scale = static_cast<float>(1 / std::sqrt(static_cast<double>(D)));
  for (bool causal : {false, true}) {
    a.causal = causal;
    const double flops = 4.0 * B * H * S * S * D * (causal ? 0.5 : 1.0);
    char shape[96];
    std::snprintf(shape, sizeof shape, "B%lld_H%lld_S%lld_D%lld", (long long)B, (long long)H,
                  (long long)S, (long long)D);
    const int iters = flops > 3e11 ? 10 : 20;
    auto run = [&](const cu::SdpaLaunch& x) {
      return time_events([&] { cu::sdpa_launch(x, cu::stream(0), 0); }, 3, iters);
    };
    double us = run(a);
    row("prefill", shape, t, causal, "default", us, flops / us / 1e6);
    // cuDNN forced (no silent fallback: the first launch must succeed), its plan built before.
    std::string why;
    if (!cu::attn::cudnn_launch(a, cu::stream(0), 0, &why)) {
      std::printf("prefill  %-34s cudnn n/a: %s\n", shape, why.c_str());
    } else {
      double u = time_events([&] { cu::attn::cudnn_launch(a, cu::stream(0), 0); }, 3, iters);
      row("prefill", shape, t, causal, "cudnn", u, flops / u / 1e6);
    }
    {
      cu::SdpaLaunch x = a;
      x.allow_cudnn = false;
      double u = run(x);
      row("prefill", shape, t, causal, "flash default", u, flops / u / 1e6);
    }
    for (int var = 0; var < cu::sdpa_flash_variants(D); ++var) {
      cu::SdpaLaunch x = a;
      x.allow_cudnn = false;
      x.flash_variant = var;
      double u = run(x);
      row("prefill", shape, t, causal,
          std::string("v") + std::to_string(var) + " " + cu::sdpa_flash_variant_name(D, var), u,
          flops / u / 1e6);
    }
    if (baseline) {
      cu::SdpaLaunch x = a;
      x.allow_fast = false;
      double u = time_events([&] { cu::sdpa_launch(x, cu::stream(0), 0); }, 1, 3);
      row("prefill", shape, t, causal, "fallback (old kernel)", u, flops / u / 1e6);
    }
  }
}

// Runs `run(launch, buffer sets)` (a timed graph of launches numbered 0, 1, ...) with the
// launches' timestamps recorded, and writes one CSV per setting: row = launch * blocks + block,
// then the kDecodeTimelineSlots values.
template <class Run>
void decode_timeline(const std::string& dir, cu::SdpaLaunch a, int nbuf, Run run) {
  // Room for 64 launches of 4096 blocks (the headline shape: 16-20 launches of 256); the kernel
  // drops marks past it.
  const int64_t rows = int64_t{64} * 4096;
  const size_t n = static_cast<size_t>(rows) * cu::kDecodeTimelineSlots;
  unsigned long long* buf = nullptr;
  CK(cudaMalloc(reinterpret_cast<void**>(&buf), n * 8));
  std::vector<unsigned long long> h(n);
  const struct {
    const char* name;
    bool settled;
    int sets;
  } cases[] = {
      {"default_cold", false, nbuf}, {"settled_cold", true, nbuf}, {"settled_hot", true, 1}};
  for (const auto& c : cases) {
    CK(cudaMemset(buf, 0, n * 8));
    a.kv_settled = c.settled;
    a.decode_timeline = buf, a.decode_timeline_rows = rows;
    const double us = run(a, c.sets);
    CK(cudaMemcpy(h.data(), buf, n * 8, cudaMemcpyDeviceToHost));
    if (std::all_of(h.begin(), h.end(), [](unsigned long long x) { return x == 0; })) {
      std::printf("timeline: nothing recorded (configure with -DLOOM_DECODE_TIMELINE=ON)\n");
      break;
    }
    const std::string path = dir + "/" + c.name + ".csv";
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
      std::printf("timeline: cannot write %s\n", path.c_str());
      break;
    }
    std::fprintf(f, "# %s %.3f us per launch\n", c.name, us);
    const size_t slots = cu::kDecodeTimelineSlots;
    for (size_t r = 0; r < n / slots; ++r) {
      if (!h[r * slots]) continue;
      std::fprintf(f, "%zu", r);
      for (size_t e = 0; e < slots; ++e) std::fprintf(f, ",%llu", h[r * slots + e]);
      std::fprintf(f, "\n");
    }
    std::fclose(f);
    std::printf("timeline %s: %.3f us per launch -> %s\n", c.name, us, path.c_str());
  }
  CK(cudaFree(buf));
}

void decode(int64_t B, int64_t Hq, int64_t Hkv, int64_t L, int64_t D, DType t, bool baseline,
            std::vector<int> split_keys) {
  const double kv_bytes = 2.0 * B * Hkv * L * D * (t == f32 ? 4 : 2);
  // Enough buffer sets that one pass over them (>= 256 MB) overflows the 50 MB L2.
  const int nbuf = static_cast<int>(std::min(32.0, std::max(1.0, std::ceil(256e6 / kv_bytes))));
  std::vector<NDArray> ks, vs;
  for (int i = 0; i < nbuf; ++i) {
    ks.push_back(dev_random({B, Hkv, L, D}, t, -2, 2, 10 + i));
    vs.push_back(dev_random({B, Hkv, L, D}, t, -1, 1, 100 + i));
  }
  NDArray q = dev_random({B, Hq, 1, D}, t, -2, 2, 7), o = dev_random({B, Hq, 1, D}, t, -1, 1, 8);
  cu::SdpaLaunch a;
  a.q = q.data(), a.out = o.data();
  a.q_dtype = a.kv_dtype = a.out_dtype = t;
  a.B = B, a.Hq = Hq, a.Hkv = Hkv, a.Lq = 1, a.Lk = L, a.D = a.Dv = D;
  a.scale = static_cast<float>(1 / std::sqrt(static_cast<double>(D)));
  char shape[96];
  std::snprintf(shape, sizeof shape, "B%lld_Hq%lld_Hkv%lld_L%lld_D%lld", (long long)B,
                (long long)Hq, (long long)Hkv, (long long)L, (long long)D);
  auto run = [&](cu::SdpaLaunch x, int sets, bool trace = false) {
    int per_graph = std::max(sets, 20) / sets * sets;
    return time_graph(
        [&](int i) {
          x.k = ks[static_cast<size_t>(i % sets)].data();
          x.v = vs[static_cast<size_t>(i % sets)].data();
          x.decode_timeline_seq = i;
          cu::sdpa_launch(x, cu::stream(0), 0);
        },
        per_graph, 20, trace);
  };
  double cold = run(a, nbuf, true), hot = run(a, 1, true);
  row("decode", shape, t, false, "default cold", cold, kv_bytes / cold / 1e3);
  row("decode", shape, t, false, "default hot (L2)", hot, kv_bytes / hot / 1e3);
  {  // as a model's step runs it: the kernel before (a GEMV; here the previous launch) writes
     // neither cache, so the split's keys are copied before the kernel waits for it
    cu::SdpaLaunch x = a;
    x.kv_settled = true;
    const double u = run(x, nbuf);
    row("decode", shape, t, false, "settled cold", u, kv_bytes / u / 1e3);
    const double h = run(x, 1);
    row("decode", shape, t, false, "settled hot (L2)", h, kv_bytes / h / 1e3);
  }
  // LOOM_BENCH_TIMELINE=DIR, with a build configured -DLOOM_DECODE_TIMELINE=ON: the headline
  // shape's per-block timestamps (not settled cold, settled cold, settled hot) as DIR/*.csv for
  // scripts/decode_timeline.py.
  if (const char* dir = std::getenv("LOOM_BENCH_TIMELINE"); dir && B == 1 && L == 4096 && t == f16)
    decode_timeline(dir, a, nbuf, run);
  for (int s : split_keys) {
    cu::SdpaLaunch x = a;
    x.decode_split_keys = s;
    double u = run(x, nbuf);
    row("decode", shape, t, false, "split " + std::to_string(s) + " cold", u, kv_bytes / u / 1e3);
  }
  if (t != f32) {  // the same split-KV scheme on the scalar kernel (before the tensor cores)
    cu::SdpaLaunch x = a;
    x.decode_kernel = 0;
    double u = run(x, nbuf);
    row("decode", shape, t, false, "scalar kernel cold", u, kv_bytes / u / 1e3);
  }
  if (baseline) {
    cu::SdpaLaunch x = a;
    x.allow_fast = false;
    double u = run(x, nbuf);
    row("decode", shape, t, false, "fallback (old kernel) cold", u, kv_bytes / u / 1e3);
  }
}

// A decode step's attention as the LLM runs it: f32 queries and output (or f16), an f16 cache of
// `cap` keys of which the first kv_len (a device scalar) are filled, causal or not. L2-hot (one
// cache); printed only (the peer script times the plain decode rows).
void decode_llm(int64_t cap, int64_t kv_len, bool causal, bool f32q) {
  NDArray k = dev_random({1, 8, cap, 128}, f16, -2, 2, 10);
  NDArray v = dev_random({1, 8, cap, 128}, f16, -1, 1, 11);
  DType qt = f32q ? f32 : f16;
  NDArray q = dev_random({1, 32, 1, 128}, qt, -2, 2, 7),
          o = dev_random({1, 32, 1, 128}, qt, -1, 1, 8);
  int64_t* len = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&len), 8);
  cudaMemcpy(len, &kv_len, 8, cudaMemcpyHostToDevice);
  cu::SdpaLaunch a;
  a.q = q.data(), a.out = o.data(), a.k = k.data(), a.v = v.data();
  a.q_dtype = a.out_dtype = qt, a.kv_dtype = f16;
  a.B = 1, a.Hq = 32, a.Hkv = 8, a.Lq = 1, a.Lk = cap, a.D = a.Dv = 128;
  a.kv_len = len, a.kv_len_dtype = DType::i64, a.causal = causal;
  a.scale = 0.088f;
  double us = time_graph([&](int) { cu::sdpa_launch(a, cu::stream(0), 0); }, 20, 20, false);
  std::printf("decode-llm cache %lld, kv_len %lld, causal %d, q %s: %.2f us\n", (long long)cap,
              (long long)kv_len, causal, f32q ? "f32" : "f16", us);
  cudaFree(len);
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  g_csv = std::fopen(argc > 1 ? argv[1] : "attention_loom.csv", "w");
  if (!g_csv) return 1;
  std::fprintf(g_csv, "kind,shape,dtype,causal,what,us,metric\n");
  std::printf("prefill metric: TFLOP/s; decode metric: GB/s of K+V\n");
  bool quick = argc > 2 && std::string(argv[2]) == "quick";
  // Decode first (small); the headline shape with split-size and baseline variants.
  decode(1, 32, 8, 4096, 128, f16, true, {128, 256});
  decode(1, 32, 8, 32768, 128, f16, false, {128, 256});
  decode(8, 32, 8, 4096, 128, f16, false, {128, 256});
  decode(16, 32, 32, 2048, 128, f16, false, {128, 256});
  decode(1, 32, 8, 4096, 128, bf16, false, {});
  decode(1, 32, 8, 4096, 128, f32, true, {});
  decode(1, 9, 3, 2048, 64, f32, true, {});    // SmolLM2-135M's attention (the LLM runs f32)
  decode(1, 32, 8, 128, 128, f16, false, {});  // a short context: latency, not bandwidth
  decode_llm(1024, 128, true, true);           // Mistral-7B's decode step, early in a reply
  decode_llm(1024, 128, true, false);
  decode_llm(1024, 1000, true, true);
  prefill(1, 8, 1024, 128, f16, true);  // small: the old kernel is slow here
  prefill(4, 32, 1024, 128, f16, false);
  if (!quick) {
    prefill(4, 32, 2048, 128, f16, false);
    prefill(4, 32, 4096, 128, f16, false);
    prefill(1, 32, 4096, 128, f16, false);
    prefill(8, 16, 2048, 64, f16, false);
    prefill(4, 32, 2048, 128, bf16, false);
  }
  std::fclose(g_csv);
  return 0;
}
