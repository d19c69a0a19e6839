// The backend interface: a device, a kernel per op, threads. Lowering asks a backend for each
// node's kernel; nothing outside src/backends knows how a kernel is implemented.
#pragma once
#include <memory>
#include <vector>

#include "ir/op_registry.h"
#include "loom/device.h"
#include "loom/kernel.h"

namespace loom::backends {

// Kernels indexed by op id; an empty function means "no kernel".
struct KernelTable {
  std::vector<KernelFn> kernels;
  void set(ir::OpId op, KernelFn fn) {
    if (kernels.size() <= op) kernels.resize(static_cast<size_t>(op) + 1);
    kernels[op] = std::move(fn);
  }
  const KernelFn* find(ir::OpId op) const {
    return op < kernels.size() && kernels[op] ? &kernels[op] : nullptr;
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;
  // This backend's own kernel for `op`, or null.
  virtual const KernelFn* kernel(ir::OpId op) const = 0;
  virtual ThreadPool* pool() const { return nullptr; }
};

// The backend for a device (created once per process; the CPU backend per thread count).
// Throws loom::Error for a device this build cannot run.
Backend& backend_for(const Device& device, int num_threads = 0);

// The reference backend's kernel table: the oracle, with a kernel for every built-in op.
const KernelTable& reference_kernels();

}  // namespace loom::backends
