// CUDA `sample` (placeholder until the kernel lands: the op reports no kernel on cuda).
#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

void register_sampling(KernelTable&) {}

}  // namespace loom::backends::cuda
