// models/llama.h — Llama-family decoders (Llama, SmolLM, ...) built from a GGUF file through the
// public graph API: quantized weights stay packed (dequantize_blocks → matmul, fused by the
// quantized_matmul pass), the KV cache lives in variables updated in place, attention is sdpa,
// positions reach rope as a tensor. One executable serves prefill (any length) and decode.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "loom/loom.h"
#include "loom/prepared_run.h"
#include "models/tokenizer.h"

namespace loom::models {

struct SamplingOptions {
  float temperature = 0;  // 0: greedy
  int top_k = 40;         // 0: every token
  float top_p = 0.95f;
  uint64_t seed = 0;
};

struct LlamaConfig {
  int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0;
  int64_t vocab = 0, context_length = 0;
  double rope_theta = 10000, rms_eps = 1e-5;
  int64_t rope_dim = 0;
  bool tied_embeddings = false;
};

struct LlamaOptions {
  int64_t max_context = 2048;  // KV cache length (clamped to the model's context length)
  // The KV cache's element type (f32, f16 or bf16); keys and values are computed in f32 and
  // rounded as they are written. Unset: f16 on CUDA (half the cache's memory and traffic, and
  // decode attention on the tensor cores), f32 elsewhere.
  std::optional<DType> kv_cache_dtype;
  Device device = Device::cpu();
  int num_threads = 0;   // 0: all cores
  bool profile = false;  // time every op (Executable::profile_report)
  // LoRA: projections (attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down) that get an
  // optional call site "blk.N.<target>.lora" whose result is added to the projection: y = x·Wᵀ +
  // call(x). Unbound, a call returns zeros, so the model computes exactly the base logits.
  std::vector<std::string> lora_targets;
  // Decode steps (one token) through a PreparedRun: inputs, arena and outputs allocated once,
  // one upload of the step's token/position per step. -1: on CUDA only; 0: never; 1: always.
  int prepared_decode = -1;
  // With a prepared decode on CUDA: capture the step as a CUDA graph and replay it.
  bool cuda_graph = true;
  // temperature > 0: the graph also samples the next token with these temperature / top_k /
  // top_p (op `sample`, seeded per step through an input), so generation with the same values
  // runs sampling on the device (inside the captured decode step) and reads back 4 bytes.
  SamplingOptions sampling;
};

// A set of adapters: an executable per LoRA call symbol ("blk.3.attn_q.lora").
struct LoraAdapter {
  std::string name;
  std::map<std::string, Executable> callables;
};
// One adapter projection: y = (x · Aᵀ) · Bᵀ · scale with A f32 [r, d_in], B f32 [d_out, r];
// x f32 [1, L, d_in] -> y f32 [1, L, d_out].
Executable lora_executable(const NDArray& a, const NDArray& b, double scale,
                           const CompileOptions& options = {});

class LlamaModel {
 public:
  // Reads hyperparameters and weights from GGUF metadata; throws "[llama] <path>: ..." on a model
  // this builder cannot run (missing tensors, unsupported architecture or tensor type).
  static LlamaModel load(const std::string& gguf_path, const LlamaOptions& options = {});

  const LlamaConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t max_context() const { return max_context_; }
  // Runs `tokens` at positions [position, position + size): appends their keys/values to the
  // cache and returns the logits of the last token, f32 [vocab].
  NDArray forward(const std::vector<int32_t>& tokens, int64_t position);
  // As forward, but returns only the greedy next token, computed on the model's device (a GPU
  // sends back 8 bytes instead of the logits).
  int32_t forward_greedy(const std::vector<int32_t>& tokens, int64_t position);
  // As forward, but returns the token sampled on the model's device with the options it was
  // loaded with (LlamaOptions::sampling) and the seed of `step` (sample_seed): equal to
  // sample(forward(...), options, step) up to rounding at a bucket boundary.
  int32_t forward_sample(const std::vector<int32_t>& tokens, int64_t position, uint64_t step,
                         uint64_t seed);
  // Decodes up to `count` tokens after `first`, which goes in at `position`: greedily, or (sampled)
  // with the options the model was loaded with and the seeds of steps `step`, `step` + 1, ...
  // Equal to calling forward_greedy / forward_sample in a loop, but with one step in flight: step
  // i + 1 is queued on the device, reading step i's token there, before step i's token reaches
  // the host, so the host's work per step (on a GPU, the CUDA graph launch: ~0.25 us per kernel)
  // overlaps the device's. on_token gets each token and returns false to stop (the step then in
  // flight finishes, its token dropped). Stops at the context's end. Returns the tokens passed.
  std::vector<int32_t> decode_stream(int32_t first, int64_t position, int count,
                                     const std::function<bool(int32_t)>& on_token,
                                     bool sampled = false, uint64_t step = 0, uint64_t seed = 0);
  // Whether forward_sample can serve these options (same temperature, top_k, top_p).
  bool samples_on_device(const SamplingOptions& o) const;
  // Switches the CUDA graph of decode steps on or off (the next step prepares again).
  void set_cuda_graph(bool on);
  // How decode steps run: "exe.run", or the prepared run's status ("captured: N graph nodes").
  std::string decode_status() const;
  // GPU (or host) time per op type of a decode step, from `repeats` eager runs of the prepared
  // step with the last step's inputs (PreparedRun::profile); empty before the first decode step.
  std::string profile_decode(int repeats = 10);
  // Forgets the cached sequence.
  void reset();
  const Executable& executable() const { return exe_; }

  // LoRA call sites (LlamaOptions::lora_targets): symbol and the projection's in/out widths.
  struct LoraSite {
    std::string symbol;
    int64_t in = 0, out = 0;
  };
  const std::vector<LoraSite>& lora_sites() const { return lora_sites_; }
  // Random adapters for every site (A ~ N(0, 1/d_in), B ~ N(0, 1/r)), for demos and tests.
  LoraAdapter random_adapter(int64_t rank, uint64_t seed, double scale = 1) const;
  // From a directory of <symbol>.a.npy / <symbol>.b.npy pairs (A [r, d_in], B [d_out, r], f32 or
  // f16); sites without files stay unbound.
  LoraAdapter load_adapter(const std::string& dir, double scale = 1) const;
  // Binds every callable of the adapter (no recompiling: microseconds); unbind_adapters returns
  // the model to its base logits.
  void bind_adapter(const LoraAdapter& adapter);
  void unbind_adapters();
  std::string summary() const;

 private:
  LlamaConfig config_;
  int64_t max_context_ = 0;
  DType kv_dtype_ = DType::f32;
  std::shared_ptr<io::GgufFile> file_;
  std::shared_ptr<Tokenizer> tokenizer_;
  Executable exe_;
  bool use_prepared_ = false, cuda_graph_ = true;
  PreparedRun decode_;       // one-token steps, made at the first one
  SamplingOptions sampler_;  // compiled into the graph when temperature > 0
  // The graph's inputs for `tokens` at `position` (checked against the context and vocabulary).
  Feeds step_feeds(const std::vector<int32_t>& tokens, int64_t position, int64_t seed) const;
  void prepare_decode(const Feeds& feeds);  // decode_, at the first one-token step
  std::vector<NDArray> run_tokens(const std::vector<int32_t>& tokens, int64_t position,
                                  int64_t seed = 0);
  std::vector<LoraSite> lora_sites_;
  CompileOptions adapter_options_;  // the model's device and threads
};

// The `sample` op's seed for generation step `step` (0: the token after the prompt).
int64_t sample_seed(uint64_t seed, uint64_t step);
// Picks the next token from f32 logits on the host: argmax at temperature 0, else exactly what the
// `sample` op's CPU kernel picks with seed sample_seed(options.seed, step) (ops/sampling.h).
int32_t sample(const NDArray& logits, const SamplingOptions& options, uint64_t step);

struct GenerateOptions {
  int max_new_tokens = 64;
  bool chat = true;         // wrap the prompt in the model's chat template
  bool ignore_eos = false;  // keep generating past end-of-generation tokens (benchmarks)
  SamplingOptions sampling;
  std::function<void(const std::string&)> on_text;  // streamed pieces
};
struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};
std::string generate(LlamaModel& model, const std::string& prompt, const GenerateOptions& options,
                     GenerateStats* stats = nullptr);

}  // namespace loom::models
