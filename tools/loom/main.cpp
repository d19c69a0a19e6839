// The `loom` command-line tool.
#include <cstring>
#include <iostream>
#include <string>

#include "loom/loom.h"

namespace {

constexpr const char* kUsage = R"(loom — a compute-graph compiler and runtime for ML inference

usage: loom <command> [options]

commands:
  version            print the version
  help, --help, -h   show this help
  ops                list the registered ops with their fusion class and arity
  selftest [device]  build a small MLP, run it on the device (cpu, reference) and compare with the
                     reference backend

Later commands (convert, run, generate, view, inspect, quantize, bench) arrive with their issues.
)";

int cmd_selftest(const std::string& device) {
  loom::Graph g;
  auto x = g.placeholder({-1, 64}, loom::f32, "x");
  auto w1 = g.constant(loom::random_normal({64, 128}, loom::f32, 1, 0, 0.1));
  auto w2 = g.constant(loom::random_normal({128, 10}, loom::f32, 2, 0, 0.1));
  auto y = loom::softmax(loom::matmul(loom::gelu(loom::matmul(x, w1)), w2));
  loom::CompileOptions opt;
  opt.device = loom::Device::parse(device);
  auto exe = g.compile({y}, opt);
  loom::CompileOptions ref_opt;
  ref_opt.device = loom::Device::reference();
  auto ref = g.compile({y}, ref_opt);
  auto in = loom::random_uniform({5, 64}, loom::f32, -1, 1, 42);
  auto a = exe.run({{"x", in}})[0].to_vector<float>();
  auto b = ref.run({{"x", in}})[0].to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  std::cout << "selftest on " << device << ": max |diff| vs reference = " << worst << "\n";
  return worst < 1e-5 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string cmd = argc > 1 ? argv[1] : "help";
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd == "version" || cmd == "--version") {
      std::cout << "loom " << loom::version() << "\n";
      return 0;
    }
    if (cmd == "selftest") return cmd_selftest(argc > 2 ? argv[2] : "cpu");
    std::cerr << "loom: unknown command '" << cmd << "'\n\n" << kUsage;
    return 2;
  } catch (const loom::Error& e) {
    std::cerr << "loom: " << e.what() << "\n";
    return 1;
  }
}
