// quantized_matmul on CUDA: the GEMV kernels (m <= 8) on every weight format, decode-sized shapes
// (Llama-8B-like 4096x4096, 14336x4096, 4096x14336 and SmolLM2-135M's), and one prefill product
// through a Loom executable. GEMV timing: a CUDA graph of 20 launches replayed, events around the
// replays, weights rotated over enough copies (> 2x the 50 MB L2) that every launch reads them
// from HBM, and marked constant as a model's weights are (each launch's first copies overlap the
// previous launch's end, as in a decode step; LOOM_BENCH_CONST_WEIGHTS=0 turns that off). Floor:
// the weight bytes (codes + scales) over the device-to-device copy bandwidth measured in the same
// run. Random packed bytes (timing does not depend on the values; the
// correctness tests are tests/backends/cuda/cuda_quant_test.cpp).
// Prints a table; with $OUT set, also writes $OUT/quant_bench.csv for bench/cuda/quant_peer.py.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/quant/qmatmul.h"
#include "backends/cuda/quant_matmul.h"
#include "loom/loom.h"

using namespace loom;
using namespace loom::backends::cuda;

namespace {

#define CK(call)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s: %s (line %d)\n", #call, cudaGetErrorString(e_), __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

void* dev_random(size_t bytes, uint64_t seed) {
  std::vector<uint8_t> h(bytes);
  std::mt19937_64 r(seed);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t v = r();
    std::memcpy(&h[i], &v, 8);
  }
  void* d = nullptr;
  CK(cudaMalloc(&d, bytes ? bytes : 1));
  CK(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
  return d;
}
// Small finite halves (f16 / bf16 scale and zero-point arrays, activations).
void* dev_halves(size_t count, bool bf16, float lo, float hi, uint64_t seed) {
  std::vector<uint16_t> h(count);
  std::mt19937_64 r(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (auto& v : h) {
    float f = u(r);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    v = bf16 ? static_cast<uint16_t>(b >> 16) : f32_to_f16(f);
  }
  void* d = nullptr;
  CK(cudaMalloc(&d, count * 2));
  CK(cudaMemcpy(d, h.data(), count * 2, cudaMemcpyHostToDevice));
  return d;
}

struct Spec {
  std::string label;  // format as printed
  int format;
  int64_t n, k, m;
  DType x;
  std::string shape;
};

struct Row {
  Spec s;
  double us, bytes;
};

double copy_gbps() {
  size_t n = size_t{1} << 30;
  void *a, *b;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> t;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  cudaFree(a);
  cudaFree(b);
  return 2.0 * static_cast<double>(n) / (t[t.size() / 2] * 1e-3) / 1e9;
}

Row time_gemv(const Spec& sp, cudaStream_t st) {
  QuantWeights w;
  w.format = sp.format, w.n = sp.n, w.k = sp.k;
  bool four = sp.format == kAffU4 || sp.format == kAffI4 || sp.format == kLutU4;
  size_t extra = 0;
  if (sp.format < kAffU4) {
    static const int qk[] = {32, 32, 32, 32, 32, 256, 256, 256, 32, 32, 32};
    static const int bytes[] = {18, 20, 34, 22, 24, 144, 176, 210, 18, 20, 36};
    w.row_bytes = sp.k / qk[sp.format] * bytes[sp.format];
  } else {
    w.row_bytes = four ? sp.k / 2 : sp.k;
  }
  bool lut = sp.format == kLutU4 || sp.format == kLutU8;
  if (!lut && sp.format >= kAffU4) {  // tinygemm-like: bf16 scale + zero point per 128 of k
    w.scale_kind = 1, w.block = 128, w.nblocks = sp.k / 128;
    w.scale_dtype = w.zero_dtype = static_cast<int>(DType::bf16);
    extra = static_cast<size_t>(sp.n * w.nblocks) * 4;
  }
  if (lut) {  // one f32 table per row
    w.entries = sp.format == kLutU4 ? 16 : 256, w.table_per_row = true;
    w.table_dtype = static_cast<int>(DType::f32);
    extra = static_cast<size_t>(sp.n * w.entries) * 4;
  }
  size_t wbytes = static_cast<size_t>(sp.n * w.row_bytes);
  double per = static_cast<double>(wbytes + extra);
  int copies = std::max<int>(1, static_cast<int>(std::ceil(120e6 / per)));
  copies = std::min(copies, 64);
  struct Copy {
    void *w, *s, *z, *t;
  };
  std::vector<Copy> cs;
  for (int c = 0; c < copies; ++c) {
    Copy cp{dev_random(wbytes, 100 + c), nullptr, nullptr, nullptr};
    if (!lut && sp.format >= kAffU4) {
      cp.s = dev_halves(static_cast<size_t>(sp.n * w.nblocks), true, 0.01f, 0.1f, 200 + c);
      cp.z = dev_halves(static_cast<size_t>(sp.n * w.nblocks), true, 0, 15, 300 + c);
    }
    if (lut) cp.t = dev_halves(static_cast<size_t>(sp.n * w.entries) * 2, true, -1, 1, 400 + c);
    cs.push_back(cp);
  }
  size_t xe = static_cast<size_t>(sp.m * sp.k), es = sp.x == DType::f32 ? 4 : 2;
  void* x =
      sp.x == DType::f32 ? dev_random(xe * 4, 7) : dev_halves(xe, sp.x == DType::bf16, -1, 1, 7);
  if (sp.x == DType::f32) {  // finite floats
    std::vector<float> h(xe);
    std::mt19937 r(5);
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& v : h) v = u(r);
    CK(cudaMemcpy(x, h.data(), xe * 4, cudaMemcpyHostToDevice));
  }
  void* y = nullptr;
  CK(cudaMalloc(&y, static_cast<size_t>(sp.m * sp.n) * es));
  // Weights are graph constants, as a model's are: a launch may start copying them before the
  // previous kernel ends (pdl.cuh), as in a decode step. LOOM_BENCH_CONST_WEIGHTS=0: never.
  static const bool constant = [] {
    const char* e = std::getenv("LOOM_BENCH_CONST_WEIGHTS");
    return !(e && e[0] == '0');
  }();
  auto launch = [&](int c) {
    QuantWeights wc = w;
    wc.w = cs[c].w, wc.scale = cs[c].s, wc.zero_point = cs[c].z, wc.table = cs[c].t;
    wc.constant = constant;
    if (!launch_quant_gemv(st, wc, x, static_cast<int>(sp.x), sp.m, y)) {
      std::fprintf(stderr, "no GEMV for %s\n", sp.label.c_str());
      std::exit(1);
    }
  };
  for (int i = 0; i < copies; ++i) launch(i);
  CK(cudaStreamSynchronize(st));
  const int per_graph = 20;
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < per_graph; ++i) launch(i % copies);
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  CK(cudaGraphLaunch(ge, st));
  std::vector<float> t;
  for (int rep = 0; rep < 7; ++rep) {
    cudaEventRecord(e0, st);
    for (int j = 0; j < 5; ++j) CK(cudaGraphLaunch(ge, st));
    cudaEventRecord(e1, st);
    CK(cudaEventSynchronize(e1));
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    t.push_back(ms * 1e3f / (5 * per_graph));
  }
  std::sort(t.begin(), t.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  for (auto& c : cs) {
    cudaFree(c.w);
    if (c.s) cudaFree(c.s);
    if (c.z) cudaFree(c.z);
    if (c.t) cudaFree(c.t);
  }
  cudaFree(x);
  cudaFree(y);
  return {sp, t[t.size() / 2], per};
}

// Prefill through a Loom executable: quantized_matmul with m rows of x (device dequantize +
// cuBLASLt), host clock around runs with device-resident inputs.
double time_prefill(const std::string& fmt, int64_t m, int64_t n, int64_t k, DType xt) {
  cpu::quant::Format f = cpu::quant::format_from_name(fmt);
  NDArray p(u8, {n, static_cast<int64_t>(cpu::quant::row_bytes(f, k))});
  std::mt19937_64 r(3);
  for (int64_t i = 0; i < p.numel(); ++i) p.data_as<uint8_t>()[i] = static_cast<uint8_t>(r());
  // Valid finite scales: every block's first half is a small f16.
  size_t bb = cpu::quant::block_bytes(f);
  int scale_at = fmt == "q6_k" ? 208 : 0;
  for (int64_t i = 0; i + static_cast<int64_t>(bb) <= p.numel(); i += static_cast<int64_t>(bb)) {
    uint16_t h = f32_to_f16(0.01f);
    std::memcpy(p.data_as<uint8_t>() + i + scale_at, &h, 2);
    if (fmt != "q6_k") std::memcpy(p.data_as<uint8_t>() + i + 2, &h, 2);
  }
  Graph g;
  auto x = g.placeholder({m, k}, xt, "x");
  auto y = quantized_matmul(x, g.constant(p), fmt, n, k);
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable exe = g.compile({y}, o);
  Feeds feeds{{"x", to_device(random_uniform({m, k}, xt, -1, 1, 1), Device::cuda(0))}};
  exe.run(feeds);
  cudaDeviceSynchronize();
  const int iters = 10;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) exe.run(feeds);
  cudaDeviceSynchronize();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
}

}  // namespace

int main() {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  double bw = copy_gbps();
  struct F {
    const char* name;
    int id;
  };
  const F all[] = {{"affine-u4-g128", kAffU4},
                   {"q4_0", kQ4_0},
                   {"q4_1", kQ4_1},
                   {"q8_0", kQ8_0},
                   {"q5_0", kQ5_0},
                   {"q5_1", kQ5_1},
                   {"q4_k", kQ4_K},
                   {"q5_k", kQ5_K},
                   {"q6_k", kQ6_K},
                   {"iq4_nl", kIQ4_NL},
                   {"affine_u4", kAffineU4Blocks},
                   {"affine_i8", kAffineI8Blocks},
                   {"affine-i8-g128", kAffI8},
                   {"lut-u4-row", kLutU4}};
  std::vector<Spec> specs;
  const std::pair<int64_t, int64_t> big[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
  for (auto [n, k] : big)
    for (const auto& f : all) {
      DType xt = f.id == kAffU4 || f.id == kAffI8 ? DType::bf16 : DType::f32;
      specs.push_back({f.name, f.id, n, k, 1, xt, std::to_string(n) + "x" + std::to_string(k)});
    }
  for (int64_t m : {4, 8})
    for (const auto& f : all) {
      DType xt = f.id == kAffU4 || f.id == kAffI8 ? DType::bf16 : DType::f32;
      specs.push_back({f.name, f.id, 14336, 4096, m, xt, "14336x4096"});
    }
  specs.push_back({"q4_0", kQ4_0, 14336, 4096, 1, DType::f16, "14336x4096"});
  specs.push_back({"q4_1", kQ4_1, 14336, 4096, 1, DType::bf16, "14336x4096"});
  // SmolLM2-135M (GGUF Q4_1 + Q8_0 output head): the decode-step products.
  const std::pair<int64_t, int64_t> smol[] = {{192, 576}, {576, 576}, {1536, 576}, {576, 1536}};
  for (auto [n, k] : smol)
    specs.push_back({"q4_1", kQ4_1, n, k, 1, DType::f32,
                     "smol " + std::to_string(n) + "x" + std::to_string(k)});
  specs.push_back({"q8_0", kQ8_0, 49152, 576, 1, DType::f32, "smol 49152x576"});

  // LOOM_BENCH_ONLY=text: only the specs whose format or shape contains it (profiling one kernel).
  const char* only = std::getenv("LOOM_BENCH_ONLY");
  std::vector<Row> rows;
  for (const auto& s : specs)
    if (!only || (s.label + " " + s.shape).find(only) != std::string::npos)
      rows.push_back(time_gemv(s, st));

  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("\nquantized_matmul GEMV on %s; device-to-device copy %.0f GB/s (read + write)\n",
              prop.name, bw);
  std::printf("%-16s %-15s %2s %5s %9s %9s %7s\n", "shape", "format", "m", "x", "us", "GB/s",
              "%copy");
  const char* out = std::getenv("OUT");
  FILE* csv = out ? std::fopen((std::string(out) + "/quant_bench.csv").c_str(), "w") : nullptr;
  if (csv) std::fprintf(csv, "shape,n,k,m,format,x,us,weight_bytes,copy_gbps\n");
  for (const auto& r : rows) {
    double gbps = r.bytes / (r.us * 1e-6) / 1e9;
    std::printf("%-16s %-15s %2ld %5s %9.2f %9.0f %6.1f%%\n", r.s.shape.c_str(), r.s.label.c_str(),
                static_cast<long>(r.s.m), std::string(dtype_name(r.s.x)).c_str(), r.us, gbps,
                100 * gbps / bw);
    if (csv)
      std::fprintf(csv, "%s,%ld,%ld,%ld,%s,%s,%.3f,%.0f,%.1f\n", r.s.shape.c_str(),
                   static_cast<long>(r.s.n), static_cast<long>(r.s.k), static_cast<long>(r.s.m),
                   r.s.label.c_str(), std::string(dtype_name(r.s.x)).c_str(), r.us, r.bytes, bw);
  }
  // Prefill: m = 512 through the executable (device dequantize into f16 + cuBLASLt).
  for (const char* fmt : {"q4_0", "q6_k"}) {
    if (only) break;
    double us = time_prefill(fmt, 512, 14336, 4096, DType::f16);
    double tf = 2.0 * 512 * 14336 * 4096 / (us * 1e-6) / 1e12;
    std::printf("prefill %s m=512 14336x4096 f16: %.1f us (%.1f TFLOP/s, executable)\n", fmt, us,
                tf);
    if (csv)
      std::fprintf(csv, "prefill 14336x4096,14336,4096,512,%s,f16,%.3f,0,%.1f\n", fmt, us, bw);
  }
  if (csv) std::fclose(csv);
  return 0;
}
