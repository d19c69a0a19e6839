// CUDA kernel of `stitched` (src/ops/stitched.h): the region's program becomes one generated CUDA
// C++ kernel, compiled by NVRTC (nvrtc_compile.h) once per distinct program and dtypes.
//
// The source depends on the program only, never on shapes: broadcasting is described by collapsed
// dims and per-input strides passed as kernel parameters, so one compiled kernel serves every
// input shape. Three entry points: a vectorised one (every input contiguous at the output's
// shape: 4 elements per thread and load), and broadcast ones with 32- and 64-bit indexing.
#pragma once
#include <string>

#include "backends/backend.h"
#include "ops/stitched.h"

namespace loom::backends::cuda {

// The generated source of `prog` (deterministic: the cache key of the compiled kernel).
std::string stitched_source(const ops::StitchProgram& prog);

// Kernel names in the generated source.
inline constexpr const char* kStitchedVec = "loom_stitched_vec";
inline constexpr const char* kStitchedIdx32 = "loom_stitched_idx32";
inline constexpr const char* kStitchedIdx64 = "loom_stitched_idx64";

// The kernel of one stitched node, compiled for `device` now (at lowering).
KernelFn make_stitched_kernel(const ir::Node& node, int device);
// Table kernel for paths without specialize: parses and compiles on first use of each program.
void register_stitched(KernelTable& t);

}  // namespace loom::backends::cuda
