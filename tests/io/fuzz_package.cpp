// libFuzzer target for the package reader: configure a clang build with -DLOOM_FUZZ=ON, write the
// seed corpus of real packages with
//   LOOM_FUZZ_CORPUS=corpus ./tests/io/package_fuzz_test --gtest_filter=*RealPackages*
// then run   ./tests/io/fuzz_package -max_total_time=60 corpus
// Any input must either load (and lower for the CPU) or throw loom::Error.
#include <cstddef>
#include <cstdint>

#include "io/package.h"
#include "loom/error.h"
#include "runtime/compile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    loom::io::Package p = loom::io::read_package_bytes(data, size, "fuzz.loom");
    loom::CompileOptions o;
    o.optimization_level = 0;
    loom::compile_graph_data(std::move(p.graph), std::move(p.outputs), o, {}, false);
  } catch (const loom::Error&) {
  }
  return 0;
}
