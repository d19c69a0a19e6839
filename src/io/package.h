// io/package.h — reading and writing `.loom` packages (docs/FORMAT.md), below the public API in
// loom/package.h: `loom inspect` and the tests read the header fields directly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "loom/executable.h"

namespace loom::io {

struct Package {
  uint32_t version = 0;
  std::string kind;        // "graph" or "executable"
  CompileOptions options;  // as stored (device included)
  std::vector<std::string> pass_log;
  ir::GraphData graph;
  std::vector<ir::Value> outputs;
  uint64_t file_bytes = 0;
  uint64_t data_bytes = 0;  // the tensor data section
  // Call symbols of an executable (version 2): an embedded callee package, or null (unbound, to
  // be bound at load through CompileOptions::callables).
  struct Callable {
    std::string symbol;
    std::shared_ptr<Package> package;
  };
  std::vector<Callable> callables;
};

// A call symbol to store: `executable` is embedded, or left unbound when invalid.
struct CallableEntry {
  std::string symbol;
  Executable executable;
};

// Writes `graph` + `outputs` as a package. kind: "graph" or "executable".
void write_package(const std::string& path, const std::string& kind, const ir::GraphData& graph,
                   const std::vector<ir::Value>& outputs, const CompileOptions& options,
                   const std::vector<std::string>& pass_log,
                   const std::vector<CallableEntry>& callables = {});
// Memory-maps and validates a package; constants reference the mapping (kept alive by them).
Package read_package(const std::string& path);
// The same from bytes in memory (the fuzz tests); `name` is used in error messages. The bytes
// are copied into an owned, 64-byte aligned buffer first.
Package read_package_bytes(const void* data, size_t size, const std::string& name);

}  // namespace loom::io
