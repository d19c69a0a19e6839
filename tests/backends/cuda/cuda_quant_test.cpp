// quantized_matmul and dequantize_blocks on CUDA (quant_matmul*.cu) against the CPU backend and
// the reference backend, on fresh random inputs: every block format, affine u4/i4/u8/i8 weights
// (per block, per row, per tensor, and layouts served by the fallback), lookup tables; m = 1, 3,
// 8 (GEMV kernels) and 33 (device dequantize + cuBLASLt); odd n; f32, f16 and bf16 activations.
// Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include "backends/cpu/quant/qmatmul.h"
#include "loom/loom.h"
#include "loom/prepared_run.h"

namespace loom {
namespace {

namespace q = loom::cpu::quant;

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU"

uint64_t fresh_seed() { return std::random_device{}(); }

// Weights [n, k] in a block format, from the format's own encoder (valid blocks).
NDArray packed_weights(q::Format f, int64_t n, int64_t k, uint64_t seed) {
  NDArray w = random_uniform({n, k}, f32, -1, 1, seed);
  auto rb = static_cast<int64_t>(q::row_bytes(f, k));
  NDArray p(u8, {n, rb});
  for (int64_t r = 0; r < n; ++r)
    q::quantize_row(f, w.data_as<float>() + r * k, k, p.data_as<uint8_t>() + r * rb);
  return p;
}

// |got - want| <= atol + rtol·|want| everywhere; the first offender in the message.
::testing::AssertionResult close(const NDArray& got, const NDArray& want, double rtol,
                                 double atol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure()
           << "type " << got.type().to_string() << " vs " << want.type().to_string();
  auto a = got.to_doubles(), b = want.to_doubles();
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i])))
      return ::testing::AssertionFailure() << "element " << i << ": got " << a[i] << ", want "
                                           << b[i] << " (of " << a.size() << ")";
  return ::testing::AssertionSuccess();
}

struct Runs {
  NDArray gpu, gpu_dev, cpu, ref;
  std::string gpu_log;  // the pass log and the compiled graph (failure messages)
};

// Compiles `y` for CUDA, CPU and the reference backend and runs all three on feeds `x`; the GPU
// also with the input already on the device.
Runs run_all(const Graph& g, const Tensor& y, const NDArray& x) {
  CompileOptions go;
  go.device = Device::cuda(0);
  CompileOptions ro;
  ro.device = Device::reference();
  Executable gpu = g.compile({y}, go), cpu = g.compile({y}), ref = g.compile({y}, ro);
  Runs r;
  for (const auto& l : gpu.pass_log()) r.gpu_log += l + "\n";
  r.gpu_log += gpu.to_text();
  r.gpu = gpu.run({{"x", x}})[0];
  r.gpu_dev = to_host(gpu.run({{"x", to_device(x, Device::cuda(0))}})[0]);
  r.cpu = cpu.run({{"x", x}})[0];
  r.ref = ref.run({{"x", x}})[0];
  return r;
}

const q::Format kAllFormats[] = {q::Format::q4_0,      q::Format::q4_1,     q::Format::q8_0,
                                 q::Format::q5_0,      q::Format::q5_1,     q::Format::q4_k,
                                 q::Format::q5_k,      q::Format::q6_k,     q::Format::iq4_nl,
                                 q::Format::affine_u4, q::Format::affine_i8};

// Decode-sized products of the CPU's integer-dot formats take the int8-activation GEMV
// (src/backends/cuda/quant_gemv_int8.cu) unless LOOM_QMM_INT8=0.
bool int8_gemv(q::Format f, int64_t m) {
  const char* e = std::getenv("LOOM_QMM_INT8");
  return !(e && e[0] == '0') && q::uses_integer_dot(f) && m <= 8;
}

// k spans two staged chunks of 1024 (the second partial) and is a multiple of the block only.
int64_t k_for(q::Format f) { return q::block_size(f) == 256 ? 1280 : 1088; }

TEST(CudaQuantizedMatmul, EveryBlockFormatMatchesCpuAndReference) {
  REQUIRE_GPU();
  for (q::Format f : kAllFormats) {
    std::string name(q::format_name(f));
    const int64_t n = 37, k = k_for(f);
    for (int64_t m : {1, 3, 8, 33}) {
      SCOPED_TRACE(name + " m=" + std::to_string(m));
      uint64_t seed = fresh_seed();
      Graph g;
      auto x = g.placeholder({m, k}, f32, "x");
      auto y = quantized_matmul(x, g.constant(packed_weights(f, n, k, seed)), name, n, k);
      NDArray xv = random_uniform({m, k}, f32, -1, 1, seed + 1);
      Runs r = run_all(g, y, xv);
      double sk = std::sqrt(static_cast<double>(k));
      if (int8_gemv(f, m)) {
        // x quantized to int8 exactly as the CPU does, exact integer sums: the CPU's result to
        // float rounding, and the CPU's distance from the reference (~ |x|/254 per term).
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-5 * sk)) << "vs CPU, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-3, 0.01 * sk)) << "vs reference, seed " << seed;
      } else {
        // The GPU decodes exactly and sums in f32: tight against the double-precision reference.
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 2e-5 * sk)) << "vs reference, seed " << seed;
        // The CPU's integer-dot formats quantize x to int8 (error ~ |x|/254 per term).
        double atol = q::uses_integer_dot(f) ? 0.01 * sk : 2e-5 * sk;
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-3, atol)) << "vs CPU, seed " << seed;
      }
      EXPECT_TRUE(close(r.gpu_dev, r.gpu, 0, 0)) << "device-resident input";
    }
  }
}

TEST(CudaQuantizedMatmul, HalfAndBfloat16Activations) {
  REQUIRE_GPU();
  for (DType t : {f16, bf16})
    for (q::Format f : {q::Format::q4_1, q::Format::q8_0, q::Format::q4_k, q::Format::q6_k,
                        q::Format::q5_0, q::Format::iq4_nl}) {
      std::string name(q::format_name(f));
      const int64_t n = 41, k = k_for(f);
      for (int64_t m : {1, 8, 33}) {
        SCOPED_TRACE(name + " " + std::string(dtype_name(t)) + " m=" + std::to_string(m));
        uint64_t seed = fresh_seed();
        Graph g;
        auto x = g.placeholder({m, k}, t, "x");
        auto y = quantized_matmul(x, g.constant(packed_weights(f, n, k, seed)), name, n, k);
        Runs r = run_all(g, y, random_uniform({m, k}, t, -1, 1, seed + 1));
        double sk = std::sqrt(static_cast<double>(k));
        // f16/bf16 output rounding (and, for m > 8, weights rounded to x's dtype for the GEMM).
        double rtol = t == f16 ? 4e-3 : 2e-2;
        if (m > 8) rtol *= 2;
        double ref_atol = int8_gemv(f, m) ? 0.01 + (t == f16 ? 2e-3 : 2e-2)
                          : t == f16      ? 2e-3
                                          : 2e-2;
        EXPECT_TRUE(close(r.gpu, r.ref, rtol, ref_atol * sk)) << "vs reference, seed " << seed;
        double atol = (q::uses_integer_dot(f) ? 0.01 : 2e-3) * sk;
        EXPECT_TRUE(close(r.gpu, r.cpu, rtol, atol)) << "vs CPU, seed " << seed;
      }
    }
}

TEST(CudaQuantizedMatmul, DequantizeBlocksMatchesCpu) {
  REQUIRE_GPU();
  for (q::Format f : kAllFormats) {
    std::string name(q::format_name(f));
    const int64_t n = 37, k = k_for(f);
    uint64_t seed = fresh_seed();
    Graph g;
    auto x = g.placeholder({1}, f32, "x");
    auto y = dequantize_blocks(g.constant(packed_weights(f, n, k, seed)), name, k) * x;
    Runs r = run_all(g, y, random_uniform({1}, f32, 0.5, 2, seed + 1));
    EXPECT_TRUE(close(r.gpu, r.cpu, 1e-6, 1e-7)) << name << " seed " << seed;
  }
}

// dequantize(q, scale[, zero point]) → matmul(x, Wᵀ), fused into quantized_matmul("affine").
struct AffineCase {
  DType qt;
  int axis;
  int64_t block;  // 0: per tensor (scalar scale) when axis < 0, else per axis
  bool zp;
};

std::string affine_name(const AffineCase& c, int64_t n, int64_t m) {
  return std::string(dtype_name(c.qt)) + " axis " + std::to_string(c.axis) + " block " +
         std::to_string(c.block) + (c.zp ? " zp" : "") + " n=" + std::to_string(n) +
         " m=" + std::to_string(m);
}

// x [m, k] · dequantize(q [n, k] of c.qt, f32 scale[, zero point])ᵀ on every backend, the weights
// spanning the codes' whole range; checks the pair was fused into quantized_matmul.
Runs run_affine(const AffineCase& c, int64_t n, int64_t k, int64_t m, uint64_t seed) {
  bool is4 = c.qt == u4 || c.qt == i4, sgn = c.qt == i4 || c.qt == i8;
  double lo = sgn ? (is4 ? -8 : -128) : 0, hi = sgn ? (is4 ? 8 : 128) : (is4 ? 16 : 256);
  Shape ss;
  if (c.axis < 0)
    ss = Shape({});
  else if (c.block == 0)
    ss = Shape({c.axis == 0 ? n : k});
  else
    ss = c.axis == 1 ? Shape({n, (k + c.block - 1) / c.block})
                     : Shape({(n + c.block - 1) / c.block, k});
  Graph g;
  auto x = g.placeholder({m, k}, f32, "x");
  auto qv = g.constant(random_uniform({n, k}, c.qt, lo, hi, seed));
  auto s = g.constant(random_uniform(ss, f32, 0.5 / (hi - lo), 4 / (hi - lo), seed + 1));
  Tensor z;
  if (c.zp) z = g.constant(random_uniform(ss, f32, lo, hi, seed + 2));
  QuantAttrs qa;
  qa.axis = c.axis < 0 ? 1 : c.axis;
  qa.block_size = c.block;
  auto y = matmul(x, dequantize(qv, s, z, qa), {.transpose_b = true});
  Runs r = run_all(g, y, random_uniform({m, k}, f32, -1, 1, seed + 3));
  EXPECT_NE(r.gpu_log.find("[quantized_matmul] fused"), std::string::npos) << r.gpu_log;
  return r;
}

TEST(CudaQuantizedMatmul, AffineWeights) {
  REQUIRE_GPU();
  const int64_t n = 39, k = 200;  // k: whole groups of 8, the last block of 64 partial
  const AffineCase cases[] = {
      {u4, 1, 32, true},  {u4, 1, 64, true}, {i4, 1, 32, false}, {u8, 1, 32, true},
      {i8, 1, 40, false}, {i8, 0, 0, true},  {u4, 0, 0, false},  {i4, -1, 0, true},
      {u8, 1, 0, true},   // per column: no GEMV (fallback: device dequantize + GEMM)
      {i8, 0, 8, false},  // blocks along n: fallback too
  };
  for (const auto& c : cases)
    for (int64_t m : {1, 3, 8, 33}) {
      SCOPED_TRACE(affine_name(c, n, m));
      uint64_t seed = fresh_seed();
      Runs r = run_affine(c, n, k, m, seed);
      EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 1e-4)) << "vs reference, seed " << seed;
      EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-4)) << "vs CPU, seed " << seed;
    }
}

// The affine-tensor GEMV (quant_gemv_tensor.cu: k a multiple of 32, blocks of k multiples of
// 32): steps of 2 KB of codes per row (1 KB at m = 8) with the last one partial, a partial
// last scale block (96), zero points or none, scales per block / row / tensor, odd n and a case
// with several row groups per warp. Its 4-bit arithmetic loses ~4 bits of each block's f32 sum
// (the header): atol 2e-3 on outputs of magnitude ~50.
struct AffineGemvCase {
  DType qt;
  int axis;
  int64_t block;
  bool zp;
  int64_t n;
};

TEST(CudaQuantizedMatmul, AffineTensorGemv) {
  REQUIRE_GPU();
  const int64_t k = 4192;  // 131 blocks of 32
  const AffineGemvCase cases[] = {
      {u4, 1, 128, true, 37}, {u4, 1, 96, true, 1},    {i4, 1, 32, false, 37},
      {u8, 1, 64, true, 37},  {i8, 1, 128, false, 37}, {i8, 0, 0, true, 37},
      {u4, -1, 0, true, 37},  {i4, 0, 0, false, 37},   {u4, 1, 128, true, 6001},
  };
  for (const auto& c : cases)
    for (int64_t m : {1, 3, 8}) {
      if (c.n > 1000 && m != 3) continue;
      const AffineCase ac{c.qt, c.axis, c.block, c.zp};
      SCOPED_TRACE(affine_name(ac, c.n, m));
      uint64_t seed = fresh_seed();
      Runs r = run_affine(ac, c.n, k, m, seed);
      EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 2e-3)) << "vs reference, seed " << seed;
      EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 2e-3)) << "vs CPU, seed " << seed;
      EXPECT_TRUE(close(r.gpu_dev, r.gpu, 0, 0)) << "device-resident input, seed " << seed;
    }
}

// x [m, k] · dequantize_lut(indices [n, k] of it, table)ᵀ on every backend: one table of
// table_dt or one per row, random indices over all its entries.
Runs run_lut(DType it, bool per_row, DType table_dt, int64_t n, int64_t k, int64_t m,
             uint64_t seed) {
  int64_t entries = it == u4 ? 16 : 256;
  Graph g;
  auto x = g.placeholder({m, k}, f32, "x");
  auto idx = g.constant(random_uniform({n, k}, it, 0, static_cast<double>(entries), seed));
  auto tab = g.constant(
      random_uniform(per_row ? Shape({n, entries}) : Shape({entries}), table_dt, -1, 1, seed + 1));
  auto y = matmul(x, dequantize_lut(idx, tab), {.transpose_b = true});
  return run_all(g, y, random_uniform({m, k}, f32, -1, 1, seed + 2));
}

// Lookup-table indices in the tensor GEMV: u4 / u8 indices, one f16 table or one f32 table per
// row (u8 per row is folded at compile time), k of several steps with the last partial; n = 37
// leaves a last row group of one row.
TEST(CudaQuantizedMatmul, LookupTableTensorGemv) {
  REQUIRE_GPU();
  const int64_t n = 37, k = 4192;
  for (DType it : {u4, u8})
    for (bool per_row : {false, true})
      for (int64_t m : {1, 2, 3, 8}) {
        if (it == u8 && per_row) continue;
        SCOPED_TRACE(std::string(dtype_name(it)) + (per_row ? " per-row" : " shared") +
                     " m=" + std::to_string(m));
        uint64_t seed = fresh_seed();
        Runs r = run_lut(it, per_row, per_row ? f32 : f16, n, k, m, seed);
        EXPECT_NE(r.gpu_log.find("[quantized_matmul] fused"), std::string::npos) << r.gpu_log;
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 1e-3)) << "vs reference, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-3)) << "vs CPU, seed " << seed;
      }
}

// 4-bit indices with f32 tables per row and one f32 row of x take the k-split LUT GEMV
// (quant_gemv_lut.cu) where k is a multiple of 512: one warp per CTA (k = 512), 8 (k = 4096, the
// 7B shapes' rows) and 28 (k = 14336); n = 37 and 130 leave partial row groups of 4. The same
// products with LOOM_QMM_LUT_SLICED=0 run the tensor GEMV (LookupTableTensorGemv covers it).
TEST(CudaQuantizedMatmul, LookupTableSlicedGemv) {
  REQUIRE_GPU();
  for (int64_t k : {512, 4096, 14336})
    for (int64_t n : {37, 130}) {
      SCOPED_TRACE("k=" + std::to_string(k) + " n=" + std::to_string(n));
      uint64_t seed = fresh_seed();
      Runs r = run_lut(u4, true, f32, n, k, 1, seed);
      EXPECT_NE(r.gpu_log.find("[quantized_matmul] fused"), std::string::npos) << r.gpu_log;
      // Sums of k products of [-1, 1] values in another order: |y| ~ 0.33·√k.
      const double atol = 2e-6 * static_cast<double>(k);
      EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, atol)) << "vs reference, seed " << seed;
      EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, atol)) << "vs CPU, seed " << seed;
      EXPECT_TRUE(close(r.gpu_dev, r.gpu, 0, 0)) << "device-resident input, seed " << seed;
    }
}

// u4 codes with half scales and zero points per block of k (tinygemm's and MPSGraph's int4
// layout at block 128) and half activations: decode rows take the affine-tensor GEMV with int8 x,
// prefill (m = 33) the device dequantize + GEMM. k = 8192: x quantized once for the CTAs to copy
// (launch_quantize_x), with 4-bit and 8-bit codes (their element orders differ).
struct HalfCase {
  int64_t k, block;
  DType qt;
};

TEST(CudaQuantizedMatmul, AffineHalfActivations) {
  REQUIRE_GPU();
  const int64_t n = 45;
  for (auto [k, block, qt] :
       {HalfCase{256, 64, u4}, {4096, 128, u4}, {8192, 128, u4}, {8192, 128, u8}})
    for (DType t : {f16, bf16})
      for (int64_t m : {1, 4, 33}) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + std::string(dtype_name(qt)) +
                     " k=" + std::to_string(k) + " m=" + std::to_string(m));
        uint64_t seed = fresh_seed();
        const double top = qt == u4 ? 16 : 256;
        Graph g;
        auto x = g.placeholder({m, k}, t, "x");
        auto qv = g.constant(random_uniform({n, k}, qt, 0, top, seed));
        auto s = g.constant(
            random_uniform({n, k / block}, t, 0.01 * 16 / top, 0.1 * 16 / top, seed + 1));
        auto z = g.constant(random_uniform({n, k / block}, t, 0, top - 1, seed + 2));
        QuantAttrs qa;
        qa.axis = 1;
        qa.block_size = block;
        qa.dtype = t;
        auto y = matmul(x, dequantize(qv, s, z, qa), {.transpose_b = true});
        Runs r = run_all(g, y, random_uniform({m, k}, t, -1, 1, seed + 3));
        EXPECT_NE(r.gpu_log.find("[quantized_matmul] fused"), std::string::npos) << r.gpu_log;
        // The reference rounds W to x's dtype before the product; the GEMV does not, but
        // quantizes x to int8 per 32 (unless LOOM_QMM_TENSOR_INT8=0): |Δx| <= max|x| / 254 per
        // element, one sigma ~0.004·√k on these outputs (|y| ~ 0.3·√k).
        const char* e = std::getenv("LOOM_QMM_TENSOR_INT8");
        const bool int8_x = m <= 8 && !(e && e[0] == '0');
        const double sk = std::sqrt(static_cast<double>(k));
        double rtol = t == f16 ? 8e-3 : 4e-2, atol = int8_x ? 0.006 * sk : rtol * sk / 16;
        EXPECT_TRUE(close(r.gpu, r.ref, rtol, atol)) << "vs reference, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.cpu, rtol, atol)) << "vs CPU, seed " << seed;
      }
}

TEST(CudaQuantizedMatmul, LookupTableWeights) {
  REQUIRE_GPU();
  const int64_t n = 35, k = 136;
  for (DType it : {u4, u8})
    for (bool per_row : {false, true})
      for (int64_t m : {1, 3, 8, 33}) {
        SCOPED_TRACE(std::string(dtype_name(it)) + (per_row ? " per-row" : " shared") +
                     " m=" + std::to_string(m));
        uint64_t seed = fresh_seed();
        Runs r = run_lut(it, per_row, f32, n, k, m, seed);
        // Constant folding evaluates u8 indices with 256-entry tables per row at compile time
        // (the folded matrix is no larger), so only the other layouts reach quantized_matmul.
        if (!(it == u8 && per_row)) {
          EXPECT_NE(r.gpu_log.find("[quantized_matmul] fused"), std::string::npos) << r.gpu_log;
        }
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 1e-4)) << "vs reference, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-4)) << "vs CPU, seed " << seed;
      }
}

// Rows of x in a batch shape [b, s, k] and a product with a tiny k (one group of 8 per row).
TEST(CudaQuantizedMatmul, BatchedActivationsAndSmallShapes) {
  REQUIRE_GPU();
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 32}, {3, 64}, {9, 32}}) {
    uint64_t seed = fresh_seed();
    Graph g;
    auto x = g.placeholder({2, 3, k}, f32, "x");
    auto y =
        quantized_matmul(x, g.constant(packed_weights(q::Format::q8_0, n, k, seed)), "q8_0", n, k);
    Runs r = run_all(g, y, random_uniform({2, 3, k}, f32, -1, 1, seed + 1));
    EXPECT_EQ(r.gpu.shape(), Shape({2, 3, n}));
    if (int8_gemv(q::Format::q8_0, 6)) {  // 6 rows of x: the int8 GEMV (the CPU's arithmetic)
      EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-5)) << "n " << n << " k " << k << " seed " << seed;
      EXPECT_TRUE(close(r.gpu, r.ref, 1e-3, 0.01 * std::sqrt(static_cast<double>(k))))
          << "n " << n << " k " << k << " seed " << seed;
    } else {
      EXPECT_TRUE(close(r.gpu, r.ref, 1e-4, 1e-4)) << "n " << n << " k " << k << " seed " << seed;
    }
  }
}

// A decode-sized product (n x k weights, m rows of x) on every backend: the CPU's result to float
// rounding where the GPU quantizes x like the CPU (int8 GEMV), the reference's within int8
// activation error, and the same result for a device-resident x.
void expect_decode_gemv(q::Format f, int64_t n, int64_t k, int64_t m) {
  std::string name(q::format_name(f));
  SCOPED_TRACE(name + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
               " m=" + std::to_string(m));
  uint64_t seed = fresh_seed();
  Graph g;
  auto x = g.placeholder({m, k}, f32, "x");
  auto y = quantized_matmul(x, g.constant(packed_weights(f, n, k, seed)), name, n, k);
  Runs r = run_all(g, y, random_uniform({m, k}, f32, -1, 1, seed + 1));
  const double sk = std::sqrt(static_cast<double>(k));
  if (int8_gemv(f, m)) {
    EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-5 * sk)) << "vs CPU, seed " << seed;
  }
  EXPECT_TRUE(close(r.gpu, r.ref, 1e-3, 0.01 * sk)) << "vs reference, seed " << seed;
  EXPECT_TRUE(close(r.gpu_dev, r.gpu, 0, 0)) << "device-resident input, seed " << seed;
}

// add(x, b) -> rms_norm -> quantized_matmul fused into add_rms_norm_quantized_matmul: short rows
// (SmolLM2's k = 576): every CTA of the int8 GEMV forms its normed x from x and b; long rows (a
// 7B model's 4096): one kernel quantizes (x + b) · gamma and the GEMV applies 1 / rms to its
// sums. The CPU quantizes the normed x to int8 the same way (a code may round the other way).
TEST(CudaQuantizedMatmul, AddRmsNormFusedGemv) {
  REQUIRE_GPU();
  const int64_t n = 576;
  for (int64_t k : {576, 4096})
    for (q::Format f : {q::Format::q4_1, q::Format::q4_0, q::Format::q8_0, q::Format::affine_u4})
      for (int64_t m : {1, 2}) {
        std::string name(q::format_name(f));
        SCOPED_TRACE(name + " k=" + std::to_string(k) + " m=" + std::to_string(m));
        uint64_t seed = fresh_seed();
        Graph g;
        auto x = g.placeholder({m, k}, f32, "x");
        auto b = g.constant(random_uniform({m, k}, f32, -1, 1, seed));
        auto gamma = g.constant(random_uniform({k}, f32, 0.5, 1.5, seed + 1));
        auto y = quantized_matmul(rms_norm(add(x, b), gamma),
                                  g.constant(packed_weights(f, n, k, seed + 2)), name, n, k);
        Runs r = run_all(g, y, random_uniform({m, k}, f32, -1, 1, seed + 3));
        EXPECT_NE(r.gpu_log.find("add_rms_norm_quantized_matmul"), std::string::npos) << r.gpu_log;
        const double sk = std::sqrt(static_cast<double>(k));
        // The GPU's norm sums in another order: a code of x may round the other way (~0.02).
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-3, 0.05)) << "vs CPU, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-3, 0.02 * sk)) << "vs reference, seed " << seed;
      }
}

// Long rows of add_rms_norm_quantized_matmul in a prepared run, where the step before the fused
// op is the GEMV that writes its b: the image kernel then reads the residual (settled: no running
// kernel writes it) and gamma (a constant) before it waits for that GEMV. Also with the residual
// written by the step right before (read after the wait). Against the CPU backend.
TEST(CudaQuantizedMatmul, AddRmsNormLongRowsReadSettledInputsEarly) {
  REQUIRE_GPU();
  const int64_t k = 4096, n = 576;
  for (bool settled : {true, false}) {
    SCOPED_TRACE(settled ? "residual settled" : "residual written by the step before");
    uint64_t seed = fresh_seed();
    Graph g;
    auto x = g.placeholder({1, k}, f32, "x");
    auto h = g.placeholder({1, k}, f32, "h");
    auto b =
        quantized_matmul(x, g.constant(packed_weights(q::Format::q4_0, k, k, seed)), "q4_0", k, k);
    auto residual = settled ? h : h * 0.5;  // the scaling runs after b's GEMV
    auto gamma = g.constant(random_uniform({k}, f32, 0.5, 1.5, seed + 1));
    auto y =
        quantized_matmul(rms_norm(add(residual, b), gamma),
                         g.constant(packed_weights(q::Format::q4_0, n, k, seed + 2)), "q4_0", n, k);
    const Feeds feeds = {{"x", random_uniform({1, k}, f32, -1, 1, seed + 3)},
                         {"h", random_uniform({1, k}, f32, -4, 4, seed + 4)}};
    CompileOptions go;
    go.device = Device::cuda(0);
    Executable gpu = g.compile({y}, go);
    std::string log;
    for (const auto& l : gpu.pass_log()) log += l + "\n";
    EXPECT_NE(log.find("add_rms_norm_quantized_matmul"), std::string::npos) << log;
    PreparedRun run(gpu, {{"x", Shape({1, k})}, {"h", Shape({1, k})}});
    run.set_inputs(feeds);
    run.run();
    const NDArray got = to_host(run.outputs()[0]);
    const NDArray want = g.compile({y}).run(feeds)[0];
    // As AddRmsNormFusedGemv: a code of the normed x may round the other way on the GPU.
    EXPECT_TRUE(close(got, want, 1e-3, 0.05)) << "vs CPU, seed " << seed;
  }
}

// One row of x with k a multiple of 512: the k-split int8 GEMV (quant_gemv_sliced.cu) where it is
// on, x f32 (each warp quantizes its 512 elements) or, from k = 8192, x's image; n = 37 and 130
// leave partial row groups of 4. Every int8-GEMV format (4-bit codes in both element orders).
TEST(CudaQuantizedMatmul, OneRowSplitOverWarps) {
  REQUIRE_GPU();
  for (q::Format f : {q::Format::q4_0, q::Format::q4_1, q::Format::q8_0, q::Format::affine_u4,
                      q::Format::affine_i8})
    for (int64_t k : {512, 4096, 8192})
      for (int64_t n : {37, 130}) {
        std::string name(q::format_name(f));
        SCOPED_TRACE(name + " k=" + std::to_string(k) + " n=" + std::to_string(n));
        uint64_t seed = fresh_seed();
        Graph g;
        auto x = g.placeholder({1, k}, f32, "x");
        auto y = quantized_matmul(x, g.constant(packed_weights(f, n, k, seed)), name, n, k);
        Runs r = run_all(g, y, random_uniform({1, k}, f32, -1, 1, seed + 1));
        const double sk = std::sqrt(static_cast<double>(k));
        // x quantized as the CPU does, exact integer sums: the CPU's result to float rounding.
        EXPECT_TRUE(close(r.gpu, r.cpu, 1e-4, 1e-5 * sk)) << "vs CPU, seed " << seed;
        EXPECT_TRUE(close(r.gpu, r.ref, 1e-3, 0.01 * sk)) << "vs reference, seed " << seed;
        EXPECT_TRUE(close(r.gpu_dev, r.gpu, 0, 0)) << "device-resident input, seed " << seed;
      }
}

// Few rows with long k (a 7B model's 4096 x 14336 down projection, scaled down): rows of several
// staged chunks, the last one partial.
TEST(CudaQuantizedMatmul, FewLongRows) {
  REQUIRE_GPU();
  for (q::Format f : {q::Format::q4_0, q::Format::q8_0, q::Format::q4_1, q::Format::affine_u4,
                      q::Format::affine_i8})
    for (int64_t m : {1, 2, 5}) expect_decode_gemv(f, 75, 32 * (2 * 128 + 37), m);
}

// From one row (most warps idle) to several row groups per warp, with k of exactly one staged
// chunk per row (q4_0, kb = 128) and of a chunk and a part (kb = 160): 13000 rows give every warp
// of an H100's 132 SMs x 3 CTAs x 8 warps 4 or more. (m = 2 at these k: x quantized once by its
// own kernel for the CTAs to copy; m = 1: the k-split kernel.)
TEST(CudaQuantizedMatmul, FewToManyRowsPerWarp) {
  REQUIRE_GPU();
  for (q::Format f : {q::Format::q4_0, q::Format::q8_0})
    for (int64_t kb : {128, 160})
      for (int64_t n : {1, 7, 1500, 4099, 13000})
        for (int64_t m : {1, 2}) expect_decode_gemv(f, n, 32 * kb, m);
}

}  // namespace
}  // namespace loom
