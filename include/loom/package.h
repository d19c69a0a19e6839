// loom/package.h — `.loom` packages: one memory-mappable file holding a graph (or a compiled
// executable's optimised graph), its variables, outputs, compile options and pass log.
// The format is versioned and documented in docs/FORMAT.md. Loading validates everything it reads
// and throws loom::Error "[package] <path>: ..." on any problem.
//
// Executables: Executable::save / Executable::load (loom/executable.h).
#pragma once
#include <string>
#include <vector>

#include "loom/executable.h"
#include "loom/graph.h"

namespace loom {

// The newest package format version this Loom reads and writes. Version 2 adds callables (an
// executable's call symbols with embedded callee packages); packages without them are written as
// version 1, which every Loom reads.
inline constexpr uint32_t kPackageVersion = 2;

// Writes an uncompiled graph and the tensors it returns (kind "graph").
void save_graph(const Graph& graph, const std::vector<Tensor>& outputs, const std::string& path);
// Reads a package of either kind as a graph (for an executable: its optimised graph). Constants
// and variables' initial values are zero-copy views of the file's mapping.
Graph load_graph(const std::string& path, std::vector<Tensor>* outputs = nullptr);

}  // namespace loom
