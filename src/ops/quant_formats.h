// Names and sizes of the block quantization formats, shared by type inference and kernels.
#pragma once
#include <cstdint>
#include <string>

namespace loom::ops {

struct BlockFormat {
  const char* name;
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
};
// nullptr when `name` is not a block format.
const BlockFormat* find_block_format(const std::string& name);
// "q4_0, q4_1, ..." for error messages.
std::string block_format_names();

}  // namespace loom::ops
