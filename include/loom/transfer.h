// loom/transfer.h — moving arrays between the host and a device.
#pragma once
#include "loom/device.h"
#include "loom/ndarray.h"

namespace loom {

// A contiguous copy of `a` on `device` (any layout on the host; an array already on `device` is
// returned as it is). Device memory comes from the device backend's caching allocator.
NDArray to_device(const NDArray& a, const Device& device);
// A contiguous host copy of a device array (waits for the device work that produces it); host
// arrays are returned as they are.
NDArray to_host(const NDArray& a);
// Number of GPUs Loom can run on (0 when built without CUDA or when no GPU/driver is present).
int cuda_device_count();

}  // namespace loom
