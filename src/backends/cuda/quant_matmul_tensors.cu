// GEMV and dequantize kernels for affine integer tensors and lookup-table indices, and the
// launchers of quant_matmul.h (which layouts have a kernel, how many rows of x a GEMV takes).
#include <cstring>

#include "backends/cuda/quant_matmul.cuh"

namespace loom::backends::cuda {
namespace qmm {

bool launch_tensor_format(cudaStream_t s, const Params& p, int format, int mt) {
  switch (format) {
    case kAffU4:
      launch<kAffU4>(s, p, mt);
      return true;
    case kAffI4:
      launch<kAffI4>(s, p, mt);
      return true;
    case kAffU8:
      launch<kAffU8>(s, p, mt);
      return true;
    case kAffI8:
      launch<kAffI8>(s, p, mt);
      return true;
    case kLutU4:
      launch<kLutU4>(s, p, mt);
      return true;
    case kLutU8:
      launch<kLutU8>(s, p, mt);
      return true;
    default:
      return false;
  }
}

}  // namespace qmm

namespace {

// Layouts the kernels take: group-constant scales (one, per row, or blocks of k that are whole
// groups of 8), full tables, k a multiple of 8.
bool supported(const QuantWeights& w) {
  if (w.format < 0 || w.format >= kNumQuantFormats || w.n <= 0 || w.k <= 0 || w.k % 8 || !w.w)
    return false;
  if (w.format >= kAffU4 && w.format <= kAffI8) {
    if (w.scale_kind == 1) return w.block > 0 && w.block % 8 == 0 && w.nblocks > 0;
    return w.scale_kind == 0 || w.scale_kind == 3;
  }
  if (w.format == kLutU4 || w.format == kLutU8)
    return w.table && w.entries == (w.format == kLutU4 ? 16 : 256);
  return true;
}

qmm::Params params(const QuantWeights& w) {
  qmm::Params p;
  std::memset(&p, 0, sizeof(p));
  p.w = static_cast<const uint8_t*>(w.w);
  p.n = w.n, p.k = w.k, p.rb = w.row_bytes, p.total = w.n * w.row_bytes;
  p.scale = w.scale, p.zp = w.zero_point, p.sdt = w.scale_dtype, p.zdt = w.zero_dtype;
  p.skind = w.scale_kind, p.block = w.block, p.nblocks = w.nblocks;
  p.table = w.table, p.tdt = w.table_dtype, p.entries = w.entries, p.per_row = w.table_per_row;
  return p;
}

bool launch(cudaStream_t s, const QuantWeights& w, const qmm::Params& p, int mt) {
  return w.format < kAffU4 ? qmm::launch_block_format(s, p, w.format, mt)
                           : qmm::launch_tensor_format(s, p, w.format, mt);
}

}  // namespace

int quant_block_format(const std::string& name) {
  static const char* const kNames[] = {"q4_0", "q4_1", "q8_0",   "q5_0",      "q5_1",     "q4_k",
                                       "q5_k", "q6_k", "iq4_nl", "affine_u4", "affine_i8"};
  for (int i = 0; i <= kAffineI8Blocks; ++i)
    if (name == kNames[i]) return i;
  return -1;
}

bool launch_quant_gemv(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype, int64_t m,
                       void* y) {
  if (!supported(w) || m < 1 || m > 8) return false;
  if (x_dtype != kF32 && x_dtype != kF16 && x_dtype != kBF16) return false;
  if (launch_quant_gemv_int8(s, w, x, x_dtype, m, y) ||
      launch_quant_gemv_lut(s, w, x, x_dtype, m, y) ||
      launch_quant_gemv_tensor(s, w, x, x_dtype, m, y))
    return true;
  qmm::Params p = params(w);
  p.x = x, p.xdt = x_dtype, p.m = static_cast<int>(m), p.y = y, p.xvec = aligned16(x);
  return launch(s, w, p, m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8);
}

bool launch_quant_dequantize(cudaStream_t s, const QuantWeights& w, void* out, int out_dtype) {
  if (!supported(w)) return false;
  if (out_dtype != kF32 && out_dtype != kF16 && out_dtype != kBF16 && out_dtype != kF64)
    return false;
  qmm::Params p = params(w);
  p.y = out, p.odt = out_dtype, p.ovec = aligned16(out);
  return launch(s, w, p, 0);
}

}  // namespace loom::backends::cuda
