// CPU matmul through OpenBLAS. f16/bf16 operands are widened to f32 (exact) and the result
// rounded once; integer matmul uses the reference kernel.
#include <cblas.h>

#include <algorithm>

#include "backends/cpu/cpu_util.h"
#include "ops/matmul_shape.h"

namespace loom::backends::cpu {
namespace {

std::vector<int64_t> batch_strides(const NDArray& x, const Shape& batch, int64_t mat) {
  int keep = std::min(x.rank(), 2);
  Shape xb(std::vector<int64_t>(x.shape().dims().begin(), x.shape().dims().end() - keep));
  std::vector<int64_t> st(static_cast<size_t>(batch.rank()), 0);
  int64_t s = mat;
  for (int i = xb.rank() - 1; i >= 0; --i) {
    st[static_cast<size_t>(i + batch.rank() - xb.rank())] = xb[i] == 1 ? 0 : s;
    s *= xb[i];
  }
  return st;
}

// The operand as f32 (a pointer into the input when it already is).
const float* as_f32(const NDArray& x, std::vector<float>& tmp) {
  if (x.dtype() == DType::f32) return x.data_as<float>();
  tmp.resize(static_cast<size_t>(x.numel()));
  load_run<float>(x.dtype(), x.data(), 0, 1, x.numel(), tmp.data());
  return tmp.data();
}

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c) {
  auto tra = ta ? CblasTrans : CblasNoTrans, trb = tb ? CblasTrans : CblasNoTrans;
  auto lda = static_cast<blasint>(ta ? m : k), ldb = static_cast<blasint>(tb ? k : n);
  auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  if constexpr (std::is_same_v<T, float>) {
    if (m == 1 && !tb)  // decode-shaped: y = x W
      cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.f, b, ldb, a, 1, 0.f, c, 1);
    else if (m == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.f, b, ldb, a, 1, 0.f, c, 1);
    else
      cblas_sgemm(CblasRowMajor, tra, trb, M, N, K, 1.f, a, lda, b, ldb, 0.f, c, N);
  } else {
    cblas_dgemm(CblasRowMajor, tra, trb, M, N, K, 1.0, a, lda, b, ldb, 0.0, c, N);
  }
}

void matmul(const KernelContext& c) {
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &out = c.outputs[0];
  const auto& at = c.attrs_as<MatmulAttrs>();
  auto s = ops::matmul_shape(a.type(), b.type(), at, nullptr);
  int64_t mk = s.m * s.k, kn = s.k * s.n, mn = s.m * s.n;
  auto sa = batch_strides(a, s.batch, mk), sb = batch_strides(b, s.batch, kn);
  int64_t batches = s.batch.numel();
  if (mn == 0) return;
  if (s.k == 0) {
    std::memset(out.data(), 0, out.nbytes());
    return;
  }
  bool f64 = a.dtype() == DType::f64;
  std::vector<float> ta, tb, tc;
  const float* pa = f64 ? nullptr : as_f32(a, ta);
  const float* pb = f64 ? nullptr : as_f32(b, tb);
  float* pc = nullptr;
  if (!f64) {
    if (out.dtype() == DType::f32)
      pc = out.data_as<float>();
    else {
      tc.resize(static_cast<size_t>(out.numel()));
      pc = tc.data();
    }
  }
  std::vector<int64_t> idx(static_cast<size_t>(s.batch.rank()), 0);
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t ao = 0, bo = 0, rem = bi;
    for (int d = s.batch.rank() - 1; d >= 0; --d) {
      int64_t i = rem % s.batch[d];
      rem /= s.batch[d];
      ao += i * sa[static_cast<size_t>(d)];
      bo += i * sb[static_cast<size_t>(d)];
    }
    if (f64)
      gemm<double>(at.transpose_a, at.transpose_b, s.m, s.n, s.k, a.data_as<double>() + ao,
                   b.data_as<double>() + bo, out.data_as<double>() + bi * mn);
    else
      gemm<float>(at.transpose_a, at.transpose_b, s.m, s.n, s.k, pa + ao, pb + bo, pc + bi * mn);
  }
  if (!tc.empty()) store_run<float>(out.dtype(), out.data(), 0, out.numel(), tc.data());
}

}  // namespace

void register_matmul(KernelTable& t) {
  KernelFn fallback = *reference_kernels().find(ir::op::matmul);
  t.set(ir::op::matmul, [fallback](const KernelContext& c) {
    if (!is_floating(c.inputs[0].dtype())) return fallback(c);
    matmul(c);
  });
}

}  // namespace loom::backends::cpu
