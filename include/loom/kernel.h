// loom/kernel.h — what a kernel sees. Used by backends and by user-registered ops.
#pragma once
#include <functional>
#include <span>

#include "loom/attrs.h"
#include "loom/ndarray.h"

namespace loom {

class ThreadPool;

struct KernelContext {
  std::span<const NDArray> inputs;  // contiguous, shapes resolved
  std::span<NDArray> outputs;       // preallocated, contiguous, to be fully written
  const Attrs* attrs = nullptr;
  ThreadPool* pool = nullptr;  // the backend's threads (may be null: run serially)
  // Bit i set: input i is a graph constant (or a view of one), which no kernel of the run writes,
  // so a GPU kernel may start reading it before earlier kernels finish (CUDA's early launch).
  uint64_t constant_inputs = 0;
  // Bit i set: input i is not written by the step before this one in a prepared run, the only
  // kernels that may still be running when this one starts (a CUDA kernel waits for its
  // predecessor before it lets its successor start, pdl.cuh), so a GPU kernel may read it before
  // it waits (rope_write_kv_sdpa's caches). Zero where unknown.
  uint64_t settled_inputs = 0;

  template <class T>
  const T& attrs_as() const {
    return loom::attrs_as<T>(*attrs);
  }
};

using KernelFn = std::function<void(const KernelContext&)>;

// Runs fn(begin, end) over [0, n) on the pool's threads, in chunks of at least `grain`.
// With a null pool (or when the pool is busy with another run) it runs on the calling thread.
void parallel_for(ThreadPool* pool, int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace loom
