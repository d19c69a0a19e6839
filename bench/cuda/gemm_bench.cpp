// Large GEMM: Loom (an executable with one matmul, inputs and output on the device) vs
// cublasGemmEx on the same buffers' sizes. Both timed by host clock around N launches plus a
// device sync, after warm-up; random inputs (never zeros). Prints a table.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "loom/loom.h"

using namespace loom;

namespace {

double time_ms(int iters, const std::function<void()>& f) {
  f();
  cudaDeviceSynchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  cudaDeviceSynchronize();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(t1 - t0).count() / iters;
}

}  // namespace

int main() {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  cublasHandle_t h;
  cublasCreate(&h);
  struct Row {
    DType t;
    int64_t n;
    double loom, blas;
  };
  std::vector<Row> rows;
  for (auto [t, n] : std::vector<std::pair<DType, int64_t>>{
           {bf16, 4096}, {f16, 4096}, {bf16, 8192}, {f32, 4096}}) {
    Graph g;
    auto a = g.placeholder({n, n}, t, "a");
    auto b = g.placeholder({n, n}, t, "b");
    CompileOptions o;
    o.device = Device::cuda(0);
    Executable exe = g.compile({matmul(a, b)}, o);
    NDArray da = to_device(random_uniform({n, n}, t, -1, 1, 1), Device::cuda(0));
    NDArray db = to_device(random_uniform({n, n}, t, -1, 1, 2), Device::cuda(0));
    Feeds feeds{{"a", da}, {"b", db}};
    int iters = n >= 8192 ? 10 : 30;
    double loom_ms = time_ms(iters, [&] { exe.run(feeds); });
    NDArray dc = exe.run(feeds)[0];
    cudaDataType_t dt = t == f32 ? CUDA_R_32F : t == f16 ? CUDA_R_16F : CUDA_R_16BF;
    float one = 1, zero = 0;
    int ni = static_cast<int>(n);
    double blas_ms = time_ms(iters, [&] {
      cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one, db.data(), dt, ni, da.data(), dt,
                   ni, &zero, dc.data(), dt, ni, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    rows.push_back({t, n, loom_ms, blas_ms});
  }
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  std::printf("\nGEMM on %s (square n x n x n, row-major; cuBLAS: cublasGemmEx, f32 compute)\n",
              p.name);
  std::printf("%-6s %6s %10s %10s %8s %10s\n", "dtype", "n", "loom ms", "cublas ms", "ratio",
              "TFLOP/s");
  for (const auto& r : rows) {
    double tf = 2.0 * r.n * r.n * r.n / (r.loom * 1e-3) / 1e12;
    std::printf("%-6s %6ld %10.3f %10.3f %8.3f %10.1f\n", std::string(dtype_name(r.t)).c_str(),
                static_cast<long>(r.n), r.loom, r.blas, r.loom / r.blas, tf);
  }
  cublasDestroy(h);
  return 0;
}
