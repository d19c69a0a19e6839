// GEMV and dequantize kernels for the block formats (GGUF and Loom's affine_u4 / affine_i8).
#include "backends/cuda/quant_matmul.cuh"

namespace loom::backends::cuda::qmm {

bool launch_block_format(cudaStream_t s, const Params& p, int format, int mt) {
  switch (format) {
    case kQ4_0:
      launch<kQ4_0>(s, p, mt);
      return true;
    case kQ4_1:
      launch<kQ4_1>(s, p, mt);
      return true;
    case kQ8_0:
      launch<kQ8_0>(s, p, mt);
      return true;
    case kQ5_0:
      launch<kQ5_0>(s, p, mt);
      return true;
    case kQ5_1:
      launch<kQ5_1>(s, p, mt);
      return true;
    case kQ4_K:
      launch<kQ4_K>(s, p, mt);
      return true;
    case kQ5_K:
      launch<kQ5_K>(s, p, mt);
      return true;
    case kQ6_K:
      launch<kQ6_K>(s, p, mt);
      return true;
    case kIQ4_NL:
      launch<kIQ4_NL>(s, p, mt);
      return true;
    case kAffineU4Blocks:
      launch<kAffineU4Blocks>(s, p, mt);
      return true;
    case kAffineI8Blocks:
      launch<kAffineI8Blocks>(s, p, mt);
      return true;
    default:
      return false;
  }
}

}  // namespace loom::backends::cuda::qmm
