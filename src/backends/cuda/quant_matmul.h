// Quantized-weight GEMV and device dequantization for quantized_matmul / dequantize_blocks
// (quant_matmul*.cu). Host-only header: matmul.cpp and the benchmark include it.
//
// Weights W [n, k] are read in their packed form: the GGUF block formats and Loom's affine_u4 /
// affine_i8 (layouts in backends/cpu/quant/qmatmul.h), affine integer tensors (u4/i4/u8/i8 with a
// scale per tensor, per row or per block of k) and lookup-table indices (u4/u8, one table or one
// per row). Every kernel stages rows of packed bytes through shared memory with 16-byte loads, so
// block alignment (18-, 20-, 34-byte blocks...) never limits the load width.
#pragma once
#include <cstdint>
#include <string>

#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

// Weight encodings the kernels know. The first 11 follow cpu::quant::Format's order.
enum QuantFormat : int {
  kQ4_0,
  kQ4_1,
  kQ8_0,
  kQ5_0,
  kQ5_1,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kIQ4_NL,
  kAffineU4Blocks,  // "affine_u4"
  kAffineI8Blocks,  // "affine_i8"
  kAffU4,           // affine tensor formats: q [n, k] of u4 / i4 / u8 / i8
  kAffI4,
  kAffU8,
  kAffI8,
  kLutU4,  // lookup tables: indices [n, k] of u4 / u8
  kLutU8,
  kNumQuantFormats
};

// A block format by name; -1 when `name` is none.
int quant_block_format(const std::string& name);

struct QuantWeights {
  int format = -1;  // QuantFormat
  const void* w = nullptr;
  int64_t n = 0, k = 0;
  int64_t row_bytes = 0;  // bytes of one packed row
  // The weights and their scales / zero points / tables are graph constants: no kernel writes
  // them, so the decode GEMV starts loading them before the previous kernel has finished
  // (pdl.cuh).
  bool constant = false;
  // Affine: scale (and optional zero point) of any float / integer dtype; scale_kind 0: one value,
  // 1: per block of `block` along k (index r * nblocks + j / block), 3: per row.
  const void *scale = nullptr, *zero_point = nullptr;
  int scale_dtype = 0, zero_dtype = 0, scale_kind = 0;
  int64_t block = 0, nblocks = 0;
  // LUT: `entries` values per table, one table or one per row.
  const void* table = nullptr;
  int table_dtype = 0;
  int64_t entries = 0;
  bool table_per_row = false;
};

// y[m, n] = x[m, k] · Wᵀ for 1 <= m <= 8, x and y contiguous f32 / f16 / bf16 (the same dtype).
// f32 accumulation. Returns false, launching nothing, when the layout has no GEMV kernel.
bool launch_quant_gemv(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype, int64_t m,
                       void* y);
// The same GEMV for q4_0, q4_1, q8_0, affine_u4 and affine_i8 with x quantized to int8 per block
// of 32 exactly as the CPU backend does, on dp4a (quant_gemv_int8.cu). launch_quant_gemv tries it
// first; LOOM_QMM_INT8=0 turns it off (then those formats take the float GEMV).
bool launch_quant_gemv_int8(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                            int64_t m, void* y);
bool quant_gemv_int8_enabled();
// The same GEMV of x = silu(g) · u, where [g, u] are the halves of p's f32 rows of 2k (op
// swiglu_quantized_matmul: a gated FFN's down projection over its gate / up product). x is
// formed where it is quantized (by every CTA, or once by quantize_x_kernel for long rows), so
// neither it nor a silu · mul kernel exists. y: f32 [m, n]. False (nothing launched) where the
// int8 GEMV does not apply.
bool launch_quant_gemv_int8_swiglu(cudaStream_t s, const QuantWeights& w, const float* p, int64_t m,
                                   float* y);
// x [m, k] quantized to int8 per block of 32 with the CPU backend's rounding, written as the
// int8-activation GEMVs keep it in shared memory (the image their CTAs copy instead of each
// reading and quantizing x): codes of `rows` >= m rows, then the blocks' scales, then d·Σq, as
// x_image_bytes(rows, k) bytes. inter: 4-bit weights' element order (element 2i in a byte's low
// nibble, 2i + 1 in its high one). swiglu: x = silu(g) · u from the halves of x's f32 rows of 2k.
// (An image of a normed x, made by the add + norm GEMV, also holds each block's sum of squares
// after d·Σq: the bytes below count it.)
void launch_quantize_x(cudaStream_t s, const void* x, int x_dtype, int64_t m, int64_t k, int rows,
                       bool inter, bool swiglu, void* image);
constexpr size_t x_image_bytes(int rows, int64_t k) {
  const auto kb = static_cast<size_t>(k / 32), kbp = (kb + 31) / 32 * 32;
  return 32 * static_cast<size_t>(rows) * kbp + 12 * static_cast<size_t>(rows) * kb;
}
// Rows of at least this many elements (LOOM_QMM_XQ_MIN_K, default 8192; 0: never) have x
// quantized once by launch_quantize_x before the GEMV (the int8 GEMV: rows of half that too
// where m > 1). Read once (this runs for every decode-step product).
int xq_min_k();
// The GEMV for affine integer tensors (u4 / i4 / u8 / i8, scales per tensor, row or block of a
// multiple of 32) and lookup-table indices (u4 / u8) with k a multiple of 32, in float arithmetic
// (quant_gemv_tensor.cu). launch_quant_gemv tries it before the generic float GEMV;
// LOOM_QMM_TENSOR=0 turns it off. False (nothing launched) outside those layouts.
bool launch_quant_gemv_tensor(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                              int64_t m, void* y);
// The GEMV for 4-bit lookup-table indices with one f32 table of 16 per row, for one f32 row of x
// with k a multiple of 512 up to 16384 (quant_gemv_lut.cu: each warp of a CTA owns 512 elements
// of k and keeps its share of x in registers). launch_quant_gemv tries it before the tensor GEMV;
// LOOM_QMM_LUT_SLICED=0 turns it off. False (nothing launched) outside that layout.
bool launch_quant_gemv_lut(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                           int64_t m, void* y);
// The int8 GEMV for one row of x with k split over the warps of a CTA (quant_gemv_sliced.cu): k a
// multiple of 512 up to 16384, rows of a multiple of 16 bytes; x f32 (16-byte aligned), or its
// image from launch_quantize_x (one row; with xss, a normed x's: y is scaled by 1 / rms). f: one of
// the int8 GEMV's block formats. False (nothing launched) outside those.
bool launch_quant_gemv_int8_sliced(cudaStream_t s, int f, const uint8_t* w, int64_t n,
                                   int64_t row_bytes, int64_t k, bool constant, const void* x,
                                   int x_dtype, const void* image, const float* xss, float eps,
                                   void* y);
// y = quantized_matmul(rms_norm(a + b) · gamma, W) and sum = a + b (op
// add_rms_norm_quantized_matmul) in the int8 GEMV. Rows of at most 2048 elements in all: every CTA
// forms its normalised x from a and b (f32 [m, k], contiguous) while its first weight copies fly,
// and CTA 0 also stores the sum; there is no norm kernel. Longer rows: one kernel stores the sum
// and writes (a + b) · gamma quantized for the CTAs to copy, with each block's sum of squares, and
// the GEMV scales its sums by the rows' 1 / rms (reading a, b and gamma in every CTA would cost
// more L2 reads than that kernel costs); a_early / gamma_early: that kernel may read a / gamma
// before the kernel before it ends (no kernel that may still run writes them). Same formats and
// limits as launch_quant_gemv_int8; false (nothing launched) outside them.
bool launch_quant_gemv_int8_add_norm(cudaStream_t s, const QuantWeights& w, const float* a,
                                     const float* b, const float* gamma, float eps, int64_t m,
                                     float* sum, float* y, bool a_early = false,
                                     bool gamma_early = false);
// out [n, k] (f32 / f16 / bf16 / f64, contiguous) = W dequantized on the device. Returns false
// when the layout has no kernel.
bool launch_quant_dequantize(cudaStream_t s, const QuantWeights& w, void* out, int out_dtype);

}  // namespace loom::backends::cuda
