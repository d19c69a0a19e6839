// The program of a `stitched` node: a region of elementwise ops run as one kernel.
//
// The `stitch` pass (src/passes/stitch.cpp) writes the region as a small graph in IR text:
// placeholders in0..inN-1 are the node's inputs in order, then the member ops in program order,
// then `return` of the region's output. Every backend reads it back through parse_stitch_program
// (cached by text, so kernels and per-plan type inference parse each program once).
//
// Semantics: every member is evaluated at the region output's shape, each input broadcast to it
// (elementwise ops commute with broadcasting, so this equals the unfused graph). Values stay in
// f32 inside the region (f16/bf16 members are not rounded between ops; `cast` to f16/bf16 rounds).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace loom::ops {

struct StitchInstr {
  ir::OpId op = 0;
  AttrsPtr attrs;
  std::vector<int> args;  // < num_inputs: region input; else instruction (arg - num_inputs)
  DType dtype = DType::f32;
};

struct StitchProgram {
  std::vector<DType> inputs;      // the region inputs' dtypes
  std::vector<StitchInstr> code;  // in order; the last one is the region's output
  int num_inputs() const { return static_cast<int>(inputs.size()); }
  DType output_dtype() const { return code.back().dtype; }
  // "silu, mul" — the member ops, for logs and kernel names.
  std::string summary() const;
};

// Parses (once per distinct text; thread safe) and checks a program: a malformed or hostile
// program (e.g. from a package) is a loom::Error naming the problem, never a crash.
std::shared_ptr<const StitchProgram> parse_stitch_program(const std::string& text);

// True for dtypes a stitched region may carry (kernels compute them in f32).
bool stitchable_dtype(DType t);

}  // namespace loom::ops
