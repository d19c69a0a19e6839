// Run-time compilation of generated CUDA C++ (NVRTC) with an in-memory and an on-disk cache, and
// loading of the result as a context-independent library (cudaLibraryLoadData).
//
// Compiling needs no GPU (nvrtcCompileProgram runs on the host), so CI checks generated code
// without one. The disk cache lives in $LOOM_CACHE_DIR, else $XDG_CACHE_HOME/loom, else
// ~/.cache/loom (sub-folder nvrtc/), one file per (source, arch, NVRTC version), named by its
// hash. A missing, read-only or corrupt cache is never an error: the source is compiled again.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom::backends::cuda::nvrtc {

// What the caches did in this process (tests assert a second compile is a hit).
struct Stats {
  uint64_t compiles = 0;      // nvrtcCompileProgram calls that succeeded
  uint64_t memory_hits = 0;   // images found in this process's cache
  uint64_t disk_hits = 0;     // images read back from the disk cache
  uint64_t disk_writes = 0;   // images written to the disk cache
  uint64_t disk_rejects = 0;  // cache files that were unreadable or corrupt (then recompiled)
};
Stats stats();

// The disk cache folder ("" when no location is known, e.g. no HOME).
std::string cache_dir();

// "sm_90" for compute capability 9.0 of `device` (needs the GPU).
std::string arch_of_device(int device);

struct CompileOptions {
  bool memory_cache = true;  // false: skip this process's cache (tests of the disk cache)
  bool disk_cache = true;
};

// The cubin of `source` for `arch` ("sm_90"), from a cache or compiled. `what` names the source
// in errors ("stitched region 'silu, mul'"). A compilation error is a loom::Error with the log.
std::shared_ptr<const std::string> compile(const std::string& source, const std::string& arch,
                                           const std::string& what,
                                           const CompileOptions& options = {});

// A compiled source loaded on the GPU: its kernels by name (cast to const void* for
// cudaLaunchKernel). Loaded once per (source, arch) in a process.
class Module {
 public:
  Module(cudaLibrary_t lib) : lib_(lib) {}
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  cudaKernel_t kernel(const char* name) const;

 private:
  cudaLibrary_t lib_;
};
std::shared_ptr<const Module> load(const std::string& source, int device, const std::string& what);

}  // namespace loom::backends::cuda::nvrtc
