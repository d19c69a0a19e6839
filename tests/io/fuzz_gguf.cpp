// libFuzzer target for the GGUF parser: configure with CXX=clang++ and -DLOOM_FUZZ=ON, then
//   ./fuzz_gguf -max_total_time=60 tests/data/gguf
// Any input must either parse (and dequantize) or throw loom::Error.
#include <cstddef>
#include <cstdint>

#include "io/gguf.h"
#include "loom/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    loom::io::GgufFile f = loom::io::GgufFile::parse(data, size, "fuzz.gguf");
    for (const auto& t : f.tensors()) {
      const auto* tr = loom::io::gguf_type_traits(static_cast<uint32_t>(t.type));
      if (tr && tr->dequantize && t.elements() <= (1 << 20)) loom::io::to_f32(t);
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
