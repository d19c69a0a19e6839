// Launchers shared between the CUDA backend's files (quant.cu's kernels used by matmul.cpp).
#pragma once
#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

// Affine (de)quantization of x into out, scale/zero point per tensor, axis or block (QuantAttrs).
void launch_affine(cudaStream_t s, const NDArray& x, const NDArray& scale,
                   const NDArray* zero_point, const NDArray& out, int64_t axis, int64_t block,
                   bool quantize);
// out = table[q] (one table) or table[row, q] (a table per index of axis 0).
void launch_lut(cudaStream_t s, const NDArray& q, const NDArray& table, const NDArray& out);
// y [m, h] = silu(p[:, :h]) · p[:, h:] for p [m, 2h] (contiguous, both of `dtype`, a float type):
// swiglu_quantized_matmul's x where its GEMV does not apply.
void launch_swiglu_halves(cudaStream_t s, const void* p, void* y, DType dtype, int64_t m,
                          int64_t h);
// Plain per-element GEMM (double accumulation) for the dtypes cuBLAS has no kernel for (integers).
void launch_naive_gemm(cudaStream_t s, const void* a, int dta, const void* b, int dtb, void* out,
                       int dto, int64_t m, int64_t n, int64_t k, bool ta, bool tb);
// The add_rms_norm op's kernel (reduction.cu): inputs a, b[, gamma], outputs sum, normed,
// NormAttrs; issued on stream_for(c).
void add_rms_norm(const KernelContext& c);

}  // namespace loom::backends::cuda
