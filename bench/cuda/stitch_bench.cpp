// Stitched elementwise regions on the GPU (issue 9): Loom with the stitch pass (one NVRTC kernel
// per region) and without it (one kernel per op), on an 8-op chain (f32 and f16, 16M elements)
// and a SwiGLU + residual of an LLM MLP (bf16). Inputs and outputs stay on the device; times are
// host clock around N runs plus one sync, after warm-up. A device-to-device copy in the same run
// gives the bandwidth for the floor (bytes read + written / bandwidth).
//
// Prints `RESULT name loom_us unstitched_us bytes compile_ms mismatches recompile_ms` lines,
// `COPY_GBPS x`, and a table; bench/cuda/stitch_peer.py adds PyTorch eager / torch.compile and
// prints the final table (see docs/benchmarks/cuda_stitch.md).
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "loom/loom.h"

using namespace loom;

namespace {

double time_us(int iters, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();
  cudaDeviceSynchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  cudaDeviceSynchronize();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
}

struct Case {
  std::string name;
  std::vector<std::pair<Shape, DType>> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> body;
};

}  // namespace

int main() {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  // y = gelu((x*a + b) * sigmoid(x) - c).clamp(-3, 3) * d: 8 ops, a..d per column.
  auto chain = [](const std::vector<Tensor>& v) {
    return clamp(gelu((v[0] * v[1] + v[2]) * sigmoid(v[0]) - v[3]), -3, 3) * v[4];
  };
  const int64_t R = 4096, C = 4096;  // 16M elements
  std::vector<Case> cases = {
      {"chain8_f32_16M", {{{R, C}, f32}, {{C}, f32}, {{C}, f32}, {{C}, f32}, {{C}, f32}}, chain},
      {"chain8_f16_16M", {{{R, C}, f16}, {{C}, f16}, {{C}, f16}, {{C}, f16}, {{C}, f16}}, chain},
      // Llama-3-8B MLP at 2048 tokens: silu(gate) * up + residual (the residual at the MLP width
      // stands for the add that follows the down projection).
      {"swiglu_res_bf16_2048x14336",
       {{{2048, 14336}, bf16}, {{2048, 14336}, bf16}, {{2048, 14336}, bf16}},
       [](const std::vector<Tensor>& v) { return silu(v[0]) * v[1] + v[2]; }},
  };

  // Copy bandwidth: 1 GiB device to device, counted as bytes read + written.
  double copy_gbps = 0;
  {
    size_t bytes = size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    cudaMalloc(&a, bytes);
    cudaMalloc(&b, bytes);
    cudaMemset(a, 1, bytes);
    double us = time_us(20, [&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); });
    copy_gbps = 2.0 * static_cast<double>(bytes) / (us * 1e-6) / 1e9;
    cudaFree(a);
    cudaFree(b);
  }
  std::printf("COPY_GBPS %.1f\n", copy_gbps);

  for (const Case& c : cases) {
    Graph g;
    std::vector<Tensor> ph;
    Feeds host, dev;
    double bytes = 0;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      std::string name = "x" + std::to_string(i);
      ph.push_back(g.placeholder(c.inputs[i].first, c.inputs[i].second, name));
      NDArray a = random_uniform(c.inputs[i].first, c.inputs[i].second, -2, 2, 100 + i);
      bytes += static_cast<double>(a.nbytes());
      host.emplace_back(name, a);
      dev.emplace_back(name, to_device(a, Device::cuda(0)));
    }
    Tensor y = c.body(ph);
    CompileOptions o;
    o.device = Device::cuda(0);
    auto t0 = std::chrono::steady_clock::now();
    Executable stitched = g.compile({y}, o);
    double compile_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The same graph again: the kernel comes from this process's cache (no NVRTC).
    t0 = std::chrono::steady_clock::now();
    Executable again = g.compile({y}, o);
    double recompile_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    CompileOptions plain = o;
    plain.disabled_passes = {"stitch"};
    Executable unstitched = g.compile({y}, plain);
    NDArray out = stitched.run(dev)[0];
    bytes += static_cast<double>(out.nbytes());
    // Correctness against the CPU backend (also stitched) on the same data.
    NDArray want = g.compile({y}).run(host)[0];
    auto gv = to_host(out).to_doubles(), wv = want.to_doubles();
    double tol = c.inputs[0].second == f32 ? 1e-4 : 2e-2;
    long bad = 0;
    for (size_t i = 0; i < gv.size(); ++i)
      bad += !(std::abs(gv[i] - wv[i]) <= tol + tol * std::abs(wv[i]));
    double loom_us = time_us(50, [&] { stitched.run(dev); });
    double plain_us = time_us(50, [&] { unstitched.run(dev); });
    std::printf("RESULT %s %.1f %.1f %.0f %.1f %ld %.1f\n", c.name.c_str(), loom_us, plain_us,
                bytes, compile_ms, bad, recompile_ms);
  }
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  std::printf("device %s, D2D copy %.0f GB/s (read + write)\n", p.name, copy_gbps);
  return 0;
}
