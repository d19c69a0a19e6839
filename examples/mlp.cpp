// A two-layer MLP with a dynamic batch dimension, compiled for the CPU and run twice with
// different batch sizes (one executable serves both).
#include <iostream>

#include "loom/loom.h"

int main() {
  loom::Graph g;
  auto x = g.placeholder({-1, 4}, loom::f32, "x");  // any batch size
  auto w1 = g.constant(loom::random_normal({4, 16}, loom::f32, 1));
  auto b1 = g.constant(loom::zeros({16}));
  auto w2 = g.constant(loom::random_normal({16, 3}, loom::f32, 2));
  auto hidden = loom::silu(loom::matmul(x, w1) + b1);
  auto probs = loom::softmax(loom::matmul(hidden, w2), -1);

  loom::Executable exe = g.compile({probs});
  for (int64_t batch : {2, 5}) {
    auto input = loom::random_uniform({batch, 4}, loom::f32, -1, 1, static_cast<uint64_t>(batch));
    auto out = exe.run({{"x", input}})[0];
    std::cout << "batch " << batch << " -> " << out.to_string(6) << "\n";
  }
  for (const auto& line : exe.pass_log()) std::cout << line << "\n";
  return 0;
}
