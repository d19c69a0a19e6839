// Decode tokens/s at batch 1 on the GPU for Llama-family models with random weights written by
// write_synthetic_llama_gguf (docs/benchmarks/cuda_llm.md): SmolLM2-135M's shape and formats, and
// a Mistral-7B-shaped int4 (q4_0) model. Per model: exe.run steps (SmolLM2 only), prepared eager
// steps, CUDA-graph steps; greedy decoding with the token chosen on the device (each step waits
// for its 8-byte result, as `loom generate` does). The floor is weight bytes read per token over
// the device-to-device copy bandwidth measured here.
//   llm_decode_bench [--shape smollm2|mistral7b|all] [--steps N] [--dir DIR] [--context N]
//                    [--model GGUF]   (also times a real model file, e.g. SmolLM2's own weights)
//   llm_decode_bench --write-smollm2 PATH   (writes the SmolLM2-shaped file and exits)
// With CUPTI (LOOM_BENCH_CUPTI), each model's CUDA-graph step is also traced kernel by kernel
// (kernel_trace.h): what each kernel adds to the step's time.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#ifdef LOOM_BENCH_CUPTI
#include "kernel_trace.h"
#endif
#include "models/llama.h"
#include "models/llama_synthetic.h"

using namespace loom;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Device-to-device copy of 1 GiB, bytes read + written per second (median of 5).
double copy_bandwidth() {
  size_t n = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) return 0;
  cudaMemset(a, 1, n);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < 7; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(a), cudaFree(b);
  return 2.0 * static_cast<double>(n) / (ms[ms.size() / 2] * 1e-3);
}

// Tokens/s of `steps` greedy decode steps after a 4-token prompt and 3 warm-up steps.
// Greedy steps, or (sampled) the graph's sample op with the options the model was loaded with.
// With `trace`, the timed steps' kernels are recorded there (CUPTI; the rate is then not clean).
#ifndef LOOM_BENCH_CUPTI
namespace bench {
struct KernelRecord {};
}  // namespace bench
#endif
// pipelined: the timed steps through decode_stream (one step queued ahead, the token fed back on
// the device) instead of a forward_greedy / forward_sample call per step.
double decode_rate(models::LlamaModel& m, int steps, std::string* status, bool sampled = false,
                   std::vector<bench::KernelRecord>* trace = nullptr, bool trace_kernels = true,
                   bool pipelined = false) {
  m.reset();
  std::vector<int32_t> prompt = {11, 300, 42, 7};
  uint64_t step = 0;
  auto next = [&](const std::vector<int32_t>& tokens, int64_t pos) {
    return sampled ? m.forward_sample(tokens, pos, step++, 1) : m.forward_greedy(tokens, pos);
  };
  int32_t t = next(prompt, 0);
  int64_t pos = 4;
  for (int i = 0; i < 3; ++i) t = next({t}, pos++);
#ifdef LOOM_BENCH_CUPTI
  if (trace && bench::KernelTrace::start(trace_kernels)) {
    t = next({t}, pos++);  // traced from here: the first replay is instrumented again (slow)
    cudaDeviceSynchronize();
    bench::KernelTrace::mark();
  } else {
    trace = nullptr;
  }
#endif
  auto t0 = Clock::now();
  int done = steps;
  if (pipelined)
    done = static_cast<int>(m.decode_stream(
                                 t, pos, steps, [](int32_t) { return true; }, sampled, step, 1)
                                .size());
  else
    for (int i = 0; i < steps; ++i) t = next({t}, pos++);
  double s = seconds_since(t0);
#ifdef LOOM_BENCH_CUPTI
  if (trace) cudaDeviceSynchronize(), *trace = bench::KernelTrace::stop();
#endif
  if (status) *status = m.decode_status();
  return done / s;
}

struct Row {
  std::string model, mode;
  double tok_s;
  std::string note;
};

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "all", dir = "/tmp", model;
  int steps = 128;
  int64_t context = 1024;
  std::optional<DType> kv;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--write-smollm2") {  // a file for `loom generate --model` (no GPU needed)
      models::write_synthetic_llama_gguf(v, models::smollm2_135m_shape());
      return 0;
    }
    if (a == "--shape")
      shape = v;
    else if (a == "--steps")
      steps = std::stoi(v);
    else if (a == "--dir")
      dir = v;
    else if (a == "--context")
      context = std::stoll(v);
    else if (a == "--model")
      model = v;
    else if (a == "--kv-cache")  // f32 / f16 / bf16 (default: the model's, f16 on CUDA)
      kv = dtype_from_name(v);
  }
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU: nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  double bw = copy_bandwidth();
  std::printf("device: %s, %d SMs; device-to-device copy %.2f TB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, bw / 1e12);
  std::vector<Row> rows;
  struct Case {
    std::string name;
    models::SyntheticLlamaSpec spec;
    std::string file;  // a real model: read, not written
  };
  std::vector<Case> cases;
  if (!model.empty()) cases.push_back({"smollm2-real", {}, model});
  if (shape == "all" || shape == "smollm2")
    cases.push_back({"smollm2-135m", models::smollm2_135m_shape()});
  if (shape == "all" || shape == "mistral7b")
    cases.push_back({"mistral-7b", models::mistral_7b_shape("q4_0")});
  for (auto& c : cases) {
    const bool real = !c.file.empty();
    std::string path = real ? c.file : dir + "/loom_synthetic_" + c.name + ".gguf";
    auto t0 = Clock::now();
    int64_t file_bytes = real ? 0 : models::write_synthetic_llama_gguf(path, c.spec);
    double write_s = seconds_since(t0);
    t0 = Clock::now();
    auto m = models::LlamaModel::load(
        path, {.max_context = context, .kv_cache_dtype = kv, .device = Device::cuda(0)});
    double load_s = seconds_since(t0);
    const auto& s = c.spec;
    // Weights read per token: all constants, less the embedding table when the head has its own
    // (only one row of it is read).
    int64_t block = s.embed_format == "q8_0" ? 34 : s.embed_format == "q4_1" ? 20 : 18;
    int64_t embed_bytes = s.vocab * (s.d_model / 32) * block;
    // A real file: all constants (SmolLM2 ties its embeddings, so the head reads the table).
    int64_t read_bytes =
        m.executable().constant_bytes() - (real || s.tied_embeddings ? 0 : embed_bytes);
    std::printf(
        "%s: %s\n  file %.2f GB written in %.1f s, loaded + uploaded + compiled in %.1f s; "
        "weights read per token %.3f GB -> floor %.0f tok/s at %.2f TB/s\n",
        c.name.c_str(), m.summary().c_str(), file_bytes / 1e9, write_s, load_s, read_bytes / 1e9,
        bw / static_cast<double>(read_bytes), bw / 1e12);
    std::fflush(stdout);
    std::string st;
    if (c.name != "mistral-7b") {
      auto plain = models::LlamaModel::load(path, {.max_context = context,
                                                   .kv_cache_dtype = kv,
                                                   .device = Device::cuda(0),
                                                   .prepared_decode = 0});
      rows.push_back({c.name, "exe.run per step", decode_rate(plain, steps, &st), st});
    }
    m.set_cuda_graph(false);
    rows.push_back({c.name, "prepared, eager", decode_rate(m, steps, &st), st});
    m.set_cuda_graph(true);
    rows.push_back({c.name, "prepared, CUDA graph", decode_rate(m, steps, &st), st});
    rows.push_back({c.name, "CUDA graph, pipelined",
                    decode_rate(m, steps, &st, false, nullptr, true, true), st});
#ifdef LOOM_BENCH_CUPTI
    {
      constexpr int kTraced = 16;
      std::vector<bench::KernelRecord> rec;
      decode_rate(m, kTraced, nullptr, false, &rec);
      if (!rec.empty())
        std::printf("  CUDA-graph step, kernel by kernel (CUPTI, %d steps; %s):\n%s", kTraced,
                    c.name.c_str(),
                    bench::KernelTrace::summary(rec, kTraced, static_cast<int>(m.config().n_layers))
                        .c_str());
      // 16 kernels from the middle of the last step (two Mistral-7B layers of 8): where the
      // boundaries between kernels go.
      const int from = 8 * (static_cast<int>(m.config().n_layers) / 2);
      if (!rec.empty())
        std::printf("  one stretch of the last step (us from the previous kernels' end):\n%s",
                    bench::KernelTrace::timeline(rec, kTraced, from, 16).c_str());
      const double rate = decode_rate(m, kTraced, nullptr, false, &rec, false);
      if (!rec.empty())
        std::printf("  host runtime calls only (no kernel records; %.1f tok/s):\n%s", rate,
                    bench::KernelTrace::summary(rec, kTraced).c_str());
    }
#endif
    {  // temperature sampling on the device (top-k 40, top-p 0.95) inside the captured step
      auto sm = models::LlamaModel::load(path, {.max_context = context,
                                                .kv_cache_dtype = kv,
                                                .device = Device::cuda(0),
                                                .sampling = {.temperature = 0.8f}});
      rows.push_back({c.name, "CUDA graph, sampled T 0.8", decode_rate(sm, steps, &st, true), st});
      rows.push_back({c.name, "CUDA graph, sampled, pipelined",
                      decode_rate(sm, steps, &st, true, nullptr, true, true), st});
    }
    std::printf("  GPU time per op of one decode step (eager, device events; %s):\n%s",
                c.name.c_str(), m.profile_decode(20).c_str());
    rows.push_back({c.name, "floor (weights / copy BW)", bw / static_cast<double>(read_bytes), ""});
    if (!real) std::remove(path.c_str());
  }
  std::printf("\n%-14s %-28s %10s  %s\n", "model", "decode steps", "tok/s", "status");
  for (const auto& r : rows)
    std::printf("%-14s %-28s %10.1f  %s\n", r.model.c_str(), r.mode.c_str(), r.tok_s,
                r.note.c_str());
  return 0;
}
