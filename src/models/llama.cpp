#include "models/llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "ops/sampling.h"

namespace loom::models {
namespace {

// GGUF tensor types that stay packed, with Loom's block format name.
const char* block_format(io::GgufType t) {
  switch (t) {
    case io::GgufType::Q4_0:
      return "q4_0";
    case io::GgufType::Q4_1:
      return "q4_1";
    case io::GgufType::Q8_0:
      return "q8_0";
    case io::GgufType::Q5_0:
      return "q5_0";
    case io::GgufType::Q5_1:
      return "q5_1";
    case io::GgufType::Q4_K:
      return "q4_k";
    case io::GgufType::Q5_K:
      return "q5_k";
    case io::GgufType::Q6_K:
      return "q6_k";
    case io::GgufType::IQ4_NL:
      return "iq4_nl";
    default:
      return nullptr;
  }
}

class Builder {
 public:
  Builder(const io::GgufFile& f, std::shared_ptr<io::GgufFile> keep)
      : f_(f), keep_(std::move(keep)) {}

  const io::GgufTensor& tensor(const std::string& name) {
    const io::GgufTensor* t = f_.find_tensor(name);
    LOOM_CHECK(t, "[llama] ", f_.path(), ": tensor '", name, "' is missing");
    return *t;
  }

  // A weight matrix [rows, cols] (GGUF dims: ne0 = cols): packed rows stay packed (zero copy
  // from the mapping); float types become constants.
  struct Weight {
    Tensor packed;  // u8 [rows, row_bytes] for block formats
    Tensor dense;   // f32 [rows, cols] otherwise
    std::string format;
    int64_t rows = 0, cols = 0;
  };
  Weight weight(Graph& g, const std::string& name) {
    const io::GgufTensor& t = tensor(name);
    LOOM_CHECK(t.dims.size() == 2, "[llama] ", f_.path(), ": tensor '", name, "' has ",
               t.dims.size(), " dims, expected 2");
    Weight w;
    w.cols = t.dims[0];
    w.rows = t.dims[1];
    if (const char* fmt = block_format(t.type)) {
      w.format = fmt;
      int64_t rb = static_cast<int64_t>(t.nbytes) / w.rows;
      auto storage = Storage::external(const_cast<uint8_t*>(t.data), t.nbytes, keep_);
      w.packed = g.constant(NDArray(storage, u8, {w.rows, rb}, {rb, 1}, 0), name);
    } else if (t.type == io::GgufType::F32 || t.type == io::GgufType::F16 ||
               t.type == io::GgufType::BF16) {
      w.dense = g.constant(io::to_f32(t).reshape({w.rows, w.cols}), name);
    } else {
      fail("[llama] ", f_.path(), ": tensor '", name, "' has type ", io::gguf_type_name(t.type),
           ", which this builder does not run (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 "
           "Q4_K Q5_K Q6_K IQ4_NL)");
    }
    return w;
  }
  Tensor vector(Graph& g, const std::string& name) {
    return g.constant(io::to_f32(tensor(name)), name);
  }

  // y = x · Wᵀ. Written as dequantize → matmul; the compiler fuses it into quantized_matmul.
  static Tensor linear(const Tensor& x, const Weight& w) {
    Tensor wt = w.packed.defined() ? dequantize_blocks(w.packed, w.format, w.cols) : w.dense;
    return matmul(x, wt, {.transpose_a = false, .transpose_b = true});
  }
  // Rows of an embedding table, dequantized only for the tokens looked up.
  static Tensor embed(const Tensor& ids, const Weight& w) {
    if (!w.packed.defined()) return gather(w.dense, ids, 0);
    return dequantize_blocks(gather(w.packed, ids, 0), w.format, w.cols);
  }

 private:
  const io::GgufFile& f_;
  std::shared_ptr<io::GgufFile> keep_;
};

}  // namespace

LlamaModel LlamaModel::load(const std::string& path, const LlamaOptions& options) {
  LlamaModel m;
  m.file_ = std::make_shared<io::GgufFile>(io::GgufFile::open(path));
  const io::GgufFile& f = *m.file_;
  std::string arch = f.get_string("general.architecture");
  LOOM_CHECK(arch == "llama", "[llama] ", path, ": architecture '", arch,
             "' is not a Llama-family decoder");
  auto key = [&](const char* k) { return arch + "." + k; };
  LlamaConfig& c = m.config_;
  c.n_layers = f.get_int(key("block_count"));
  c.d_model = f.get_int(key("embedding_length"));
  c.n_heads = f.get_int(key("attention.head_count"));
  c.n_kv_heads = f.get_int(key("attention.head_count_kv"), c.n_heads);
  c.d_ff = f.get_int(key("feed_forward_length"));
  c.context_length = f.get_int(key("context_length"), 2048);
  c.rope_theta = f.get_float(key("rope.freq_base"), 10000.0);
  c.rms_eps = f.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
  LOOM_CHECK(c.n_layers > 0 && c.d_model > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                 c.d_model % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0,
             "[llama] ", path, ": inconsistent hyperparameters (layers ", c.n_layers, ", width ",
             c.d_model, ", heads ", c.n_heads, "/", c.n_kv_heads, ")");
  c.head_dim = c.d_model / c.n_heads;
  c.rope_dim = f.get_int(key("rope.dimension_count"), c.head_dim);
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  m.tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::from_gguf(f));
  c.vocab = f.get_int(key("vocab_size"), m.tokenizer_->vocab_size());
  m.max_context_ = std::max<int64_t>(1, std::min(options.max_context, c.context_length));

  Builder b(f, m.file_);
  Graph g;
  // i64 like argmax's result: a decode step's token can be fed back on the device (decode_stream).
  auto tokens = g.placeholder({1, -1}, i64, "tokens");
  auto positions = g.placeholder({-1}, i32, "positions");
  auto cache_at = g.placeholder({4}, i64, "cache_at");  // {0, 0, position, 0}
  auto kv_len = g.placeholder({}, i64, "kv_len");       // position + number of tokens
  auto last = g.placeholder({3}, i64, "last");          // {0, tokens - 1, 0}
  const int64_t D = c.head_dim, H = c.n_heads, Hkv = c.n_kv_heads;
  const DType kv_dtype = m.kv_dtype_ = options.kv_cache_dtype.value_or(
      options.device.kind == Device::Kind::cuda ? DType::f16 : DType::f32);
  LOOM_CHECK(kv_dtype == DType::f32 || kv_dtype == DType::f16 || kv_dtype == DType::bf16,
             "[llama] the KV cache must be f32, f16 or bf16, not ", dtype_name(kv_dtype));
  static const std::vector<std::string> kLoraTargets = {
      "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  for (const auto& t : options.lora_targets)
    LOOM_CHECK(std::find(kLoraTargets.begin(), kLoraTargets.end(), t) != kLoraTargets.end(),
               "[llama] unknown LoRA target '", t,
               "' (attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down)");
  // A projection, plus an optional LoRA call site when it is a target.
  auto project = [&](const Tensor& x, const std::string& prefix, const std::string& name) {
    Builder::Weight w = b.weight(g, prefix + name + ".weight");
    Tensor y = Builder::linear(x, w);
    if (std::find(options.lora_targets.begin(), options.lora_targets.end(), name) ==
        options.lora_targets.end())
      return y;
    std::string symbol = prefix + name + ".lora";
    m.lora_sites_.push_back({symbol, w.cols, w.rows});
    return y + call(symbol, {x}, {{f32, Shape({1, -1, w.rows})}}, {.optional = true})[0];
  };
  auto embeddings = b.weight(g, "token_embd.weight");
  Tensor h = b.embed(tokens, embeddings);  // [1, L, d]
  RopeAttrs rope_opts{.interleaved = true,
                      .theta = c.rope_theta,
                      .position_scale = 1,
                      .rotary_dim = c.rope_dim == D ? 0 : c.rope_dim};
  auto heads = [&](const Tensor& x, int64_t n) {
    return transpose(reshape(x, {1, -1, n, D}), {0, 2, 1, 3});
  };
  for (int64_t l = 0; l < c.n_layers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    Tensor x = rms_norm(h, b.vector(g, p + "attn_norm.weight"), {.axis = -1, .eps = c.rms_eps});
    // GGUF Llama q/k weights are permuted for ggml's interleaved ("normal") rotary layout.
    Tensor q = rope(heads(project(x, p, "attn_q"), H), positions, rope_opts);
    Tensor k = rope(heads(project(x, p, "attn_k"), Hkv), positions, rope_opts);
    Tensor v = heads(project(x, p, "attn_v"), Hkv);
    Variable kc = g.variable(zeros({1, Hkv, m.max_context_, D}, kv_dtype), p + "k_cache");
    Variable vc = g.variable(zeros({1, Hkv, m.max_context_, D}, kv_dtype), p + "v_cache");
    Tensor keys = slice_update(g.read(kc), k, cache_at);  // written in place by the compiler
    Tensor values = slice_update(g.read(vc), v, cache_at);
    g.assign(kc, keys);
    g.assign(vc, values);
    Tensor att = sdpa(q, keys, values, {.causal = true, .kv_len = kv_len});
    att = reshape(transpose(att, {0, 2, 1, 3}), {1, -1, c.d_model});
    h = h + project(att, p, "attn_output");
    x = rms_norm(h, b.vector(g, p + "ffn_norm.weight"), {.axis = -1, .eps = c.rms_eps});
    Tensor gate = project(x, p, "ffn_gate");
    Tensor up = project(x, p, "ffn_up");
    h = h + project(silu(gate) * up, p, "ffn_down");
  }
  h = rms_norm(h, b.vector(g, "output_norm.weight"), {.axis = -1, .eps = c.rms_eps});
  Tensor last_h = slice(h, last, {1, 1, c.d_model});
  auto head = c.tied_embeddings ? embeddings : b.weight(g, "output.weight");
  Tensor logits = Builder::linear(last_h, head);
  // Greedy decoding needs only this (8 bytes back from a GPU instead of the logits).
  Tensor next_token = argmax(logits, 2);
  std::vector<Tensor> outputs{logits, next_token};
  // Temperature sampling on the device too (4 bytes back), seeded per step through an input.
  if (options.sampling.temperature > 0) {
    m.sampler_ = options.sampling;
    auto seed = g.placeholder({}, i64, "seed");
    outputs.push_back(cast(sample(logits, seed,
                                  {.temperature = options.sampling.temperature,
                                   .top_k = options.sampling.top_k,
                                   .top_p = options.sampling.top_p}),
                           i64));
  }
  CompileOptions opt;
  opt.device = options.device;
  opt.num_threads = options.num_threads;
  opt.profile = options.profile;
  m.exe_ = g.compile(outputs, opt);
  bool on_gpu = options.device.kind == Device::Kind::cuda;
  m.use_prepared_ = options.lora_targets.empty() &&  // call sites plan per run
                    (options.prepared_decode > 0 || (options.prepared_decode < 0 && on_gpu));
  m.cuda_graph_ = options.cuda_graph;
  m.adapter_options_.device = options.device;
  m.adapter_options_.num_threads = options.num_threads;
  return m;
}

Executable lora_executable(const NDArray& a, const NDArray& b, double scale,
                           const CompileOptions& options) {
  LOOM_CHECK(a.rank() == 2 && b.rank() == 2 && b.shape()[1] == a.shape()[0],
             "[lora] A must be [r, d_in] and B [d_out, r], got ", a.type().to_string(), " and ",
             b.type().to_string());
  Graph g;
  auto x = g.placeholder({1, -1, a.shape()[1]}, f32, "x");
  auto down = matmul(x, g.constant(a.dtype() == f32 ? a : a.astype(f32)), {.transpose_b = true});
  auto up = matmul(down, g.constant(b.dtype() == f32 ? b : b.astype(f32)), {.transpose_b = true});
  return g.compile({scale == 1 ? up : up * scale}, options);
}

LoraAdapter LlamaModel::random_adapter(int64_t rank, uint64_t seed, double scale) const {
  LOOM_CHECK(rank > 0, "[lora] rank must be positive, got ", rank);
  LOOM_CHECK(!lora_sites_.empty(),
             "[lora] the model has no LoRA call sites (LlamaOptions::lora_targets)");
  LoraAdapter adapter;
  adapter.name = "random-r" + std::to_string(rank) + "-s" + std::to_string(seed);
  uint64_t k = 0;
  for (const auto& site : lora_sites_) {
    NDArray a = random_normal({rank, site.in}, f32, seed * 7919 + 2 * k, 0,
                              1 / std::sqrt(static_cast<double>(site.in)));
    NDArray b = random_normal({site.out, rank}, f32, seed * 7919 + 2 * k + 1, 0,
                              1 / std::sqrt(static_cast<double>(rank)));
    adapter.callables[site.symbol] = lora_executable(a, b, scale, adapter_options_);
    ++k;
  }
  return adapter;
}

LoraAdapter LlamaModel::load_adapter(const std::string& dir, double scale) const {
  LoraAdapter adapter;
  adapter.name = dir;
  for (const auto& site : lora_sites_) {
    std::string base = dir + "/" + site.symbol;
    std::ifstream probe(base + ".a.npy");
    if (!probe) continue;
    NDArray a = NDArray::load_npy(base + ".a.npy");
    NDArray b = NDArray::load_npy(base + ".b.npy");
    LOOM_CHECK(
        a.rank() == 2 && a.shape()[1] == site.in && b.rank() == 2 && b.shape()[0] == site.out,
        "[lora] ", base, ": A must be [r, ", site.in, "] and B [", site.out, ", r], got ",
        a.type().to_string(), " and ", b.type().to_string());
    adapter.callables[site.symbol] = lora_executable(a, b, scale, adapter_options_);
  }
  LOOM_CHECK(!adapter.callables.empty(), "[lora] ", dir,
             ": no <symbol>.a.npy / .b.npy pairs for this model's sites (e.g. ",
             lora_sites_.empty() ? std::string("none: set LlamaOptions::lora_targets")
                                 : lora_sites_[0].symbol,
             ")");
  return adapter;
}

void LlamaModel::bind_adapter(const LoraAdapter& adapter) {
  for (const auto& [symbol, exe] : adapter.callables) exe_.bind(symbol, exe);
}

void LlamaModel::unbind_adapters() {
  for (const auto& site : lora_sites_) exe_.unbind(site.symbol);
}

Feeds LlamaModel::step_feeds(const std::vector<int32_t>& tokens, int64_t position,
                             int64_t seed) const {
  auto n = static_cast<int64_t>(tokens.size());
  LOOM_CHECK(n > 0, "[llama] forward needs at least one token");
  LOOM_CHECK(position >= 0 && position + n <= max_context_, "[llama] positions ", position, "..",
             position + n, " exceed the context of ", max_context_,
             " tokens (raise --max-context)");
  std::vector<int32_t> pos(static_cast<size_t>(n));
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[static_cast<size_t>(i)];
    LOOM_CHECK(t >= 0 && t < config_.vocab, "[llama] token id ", t, " is outside the vocabulary");
    pos[static_cast<size_t>(i)] = static_cast<int32_t>(position + i);
    ids[static_cast<size_t>(i)] = t;
  }
  Feeds feeds = {{"tokens", NDArray::from_vector(ids, {1, n})},
                 {"positions", NDArray::from_vector(pos, {n})},
                 {"cache_at", NDArray::from_vector<int64_t>({0, 0, position, 0}, {4})},
                 {"kv_len", NDArray::from_vector<int64_t>({position + n}, {})},
                 {"last", NDArray::from_vector<int64_t>({0, n - 1, 0}, {3})}};
  if (sampler_.temperature > 0)
    feeds.emplace_back("seed", NDArray::from_vector<int64_t>({seed}, {}));
  return feeds;
}

void LlamaModel::prepare_decode(const Feeds& feeds) {
  if (decode_.valid()) return;
  std::vector<std::pair<std::string, Shape>> shapes;
  for (const auto& [name, a] : feeds) shapes.emplace_back(name, a.shape());
  decode_ = PreparedRun(exe_, shapes, {.cuda_graph = cuda_graph_});
}

std::vector<NDArray> LlamaModel::run_tokens(const std::vector<int32_t>& tokens, int64_t position,
                                            int64_t seed) {
  Feeds feeds = step_feeds(tokens, position, seed);
  if (tokens.size() > 1 || !use_prepared_) return exe_.run(feeds);  // host outputs
  // A decode step: one upload of the step's values, the prepared (captured) run, device outputs.
  prepare_decode(feeds);
  decode_.set_inputs(feeds);
  decode_.run();
  return decode_.outputs();
}

std::vector<int32_t> LlamaModel::decode_stream(int32_t first, int64_t position, int count,
                                               const std::function<bool(int32_t)>& on_token,
                                               bool sampled, uint64_t step, uint64_t seed) {
  LOOM_CHECK(!sampled || sampler_.temperature > 0,
             "[llama] decode_stream with sampling needs a model loaded with "
             "LlamaOptions::sampling");
  const int out = sampled ? 2 : 1;  // the token output: argmax, or the sample op's (i64 both)
  std::vector<int32_t> kept;
  if (!use_prepared_) {  // exe.run per step: nothing to overlap
    int32_t t = first;
    for (int i = 0; i < count; ++i, ++position, ++step) {
      t = sampled ? forward_sample({t}, position, step, seed) : forward_greedy({t}, position);
      kept.push_back(t);
      if (!on_token(t) || position + 2 > max_context_) break;
    }
    return kept;
  }
  auto feeds = [&](int32_t token, int64_t pos, uint64_t st) {
    return step_feeds({token}, pos, sample_seed(seed, st));
  };
  const Feeds first_feeds = feeds(first, position, step);
  prepare_decode(first_feeds);
  const std::vector<PreparedRun::Feedback> feedback = {{out, "tokens"}};
  // Step i + 1 is queued before step i's token is waited for; it reads that token from the
  // device (feedback), so its host feeds leave "tokens" out.
  auto queue_next = [&](int64_t pos, uint64_t st) {
    Feeds f = feeds(0, pos, st);
    std::erase_if(f, [](const auto& feed) { return feed.first == "tokens"; });
    return decode_.enqueue(f, feedback, {out});
  };
  uint64_t ticket = decode_.enqueue(first_feeds, feedback, {out});
  for (int i = 0; i < count; ++i) {
    const bool more = i + 1 < count && position + 2 <= max_context_;
    const uint64_t next = more ? queue_next(position + 1, step + 1) : 0;
    const auto t = static_cast<int32_t>(decode_.wait(ticket)[0].data_as<int64_t>()[0]);
    kept.push_back(t);
    ++position, ++step;
    // Stopping here leaves the queued step to finish: its token is dropped, and the cache row
    // it wrote lies past the kept tokens (the next call's steps write it again).
    if (!on_token(t) || !more) break;
    ticket = next;
  }
  return kept;
}

NDArray LlamaModel::forward(const std::vector<int32_t>& tokens, int64_t position) {
  NDArray out = run_tokens(tokens, position)[0];
  // A prepared run's outputs are its own buffers, rewritten by the next step: hand out a copy.
  out = out.device().kind == Device::Kind::cuda ? to_host(out) : use_prepared_ ? out.clone() : out;
  return out.reshape({config_.vocab});
}

int32_t LlamaModel::forward_greedy(const std::vector<int32_t>& tokens, int64_t position) {
  NDArray next = to_host(run_tokens(tokens, position)[1]);
  return static_cast<int32_t>(next.data_as<int64_t>()[0]);
}

int32_t LlamaModel::forward_sample(const std::vector<int32_t>& tokens, int64_t position,
                                   uint64_t step, uint64_t seed) {
  LOOM_CHECK(sampler_.temperature > 0,
             "[llama] forward_sample needs a model loaded with LlamaOptions::sampling");
  NDArray next = to_host(run_tokens(tokens, position, sample_seed(seed, step))[2]);
  return static_cast<int32_t>(next.data_as<int64_t>()[0]);
}

bool LlamaModel::samples_on_device(const SamplingOptions& o) const {
  return sampler_.temperature > 0 && o.temperature == sampler_.temperature &&
         o.top_k == sampler_.top_k && o.top_p == sampler_.top_p;
}

void LlamaModel::set_cuda_graph(bool on) {
  cuda_graph_ = on;
  decode_ = PreparedRun();
}

std::string LlamaModel::profile_decode(int repeats) {
  return decode_.valid() ? decode_.profile(repeats) : std::string();
}

std::string LlamaModel::decode_status() const {
  if (!use_prepared_) return "exe.run (one plan, per-step allocations)";
  return "prepared run, " + decode_.graph_status();
}

void LlamaModel::reset() { exe_.reset_variables(); }

std::string LlamaModel::summary() const {
  std::ostringstream os;
  os << "llama: " << config_.n_layers << " layers, width " << config_.d_model << ", heads "
     << config_.n_heads << "/" << config_.n_kv_heads << " x " << config_.head_dim << ", ffn "
     << config_.d_ff << ", vocab " << config_.vocab << ", rope theta " << config_.rope_theta
     << ", context " << max_context_ << "/" << config_.context_length << ", KV cache "
     << dtype_name(kv_dtype_);
  return os.str();
}

int64_t sample_seed(uint64_t seed, uint64_t step) {
  return static_cast<int64_t>(sampling::splitmix64(seed ^ sampling::splitmix64(step)));
}

int32_t sample(const NDArray& logits, const SamplingOptions& o, uint64_t step) {
  const float* p = logits.data_as<float>();
  int64_t n = logits.numel();
  if (o.temperature <= 0) return static_cast<int32_t>(std::max_element(p, p + n) - p);
  sampling::RowScratch scratch;
  double u = sampling::uniform(static_cast<uint64_t>(sample_seed(o.seed, step)), 0);
  return static_cast<int32_t>(sampling::sample_row(
      p, n, {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p}, u, scratch));
}

std::string generate(LlamaModel& model, const std::string& prompt, const GenerateOptions& o,
                     GenerateStats* stats) {
  const Tokenizer& tok = model.tokenizer();
  std::string text = o.chat ? tok.apply_chat_template({{"user", prompt}}, true) : prompt;
  std::vector<int32_t> ids = tok.encode(text, tok.add_bos_default());
  LOOM_CHECK(!ids.empty(), "[generate] the prompt is empty");
  model.reset();
  GenerateStats s;
  s.prompt_tokens = static_cast<int64_t>(ids.size());
  auto t0 = std::chrono::steady_clock::now();
  // Greedy, or sampling with the options the model was loaded with: only the chosen token comes
  // back from the device. Other sampling options need the logits (host sample(), same rules).
  bool greedy = o.sampling.temperature <= 0;
  bool on_device = !greedy && model.samples_on_device(o.sampling);
  NDArray logits;
  int32_t next = greedy      ? model.forward_greedy(ids, 0)
                 : on_device ? model.forward_sample(ids, 0, 0, o.sampling.seed)
                             : -1;
  if (!greedy && !on_device) logits = model.forward(ids, 0);
  auto t1 = std::chrono::steady_clock::now();
  s.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  std::string out;
  std::vector<int32_t> generated;
  int64_t position = static_cast<int64_t>(ids.size());
  // A token: false ends the generation (end of generation, or the token budget).
  auto take = [&](int32_t t) {
    if (!o.ignore_eos && tok.is_end_of_generation(t)) return false;
    generated.push_back(t);
    std::string piece = tok.token_to_piece(t);
    out += piece;
    if (o.on_text) o.on_text(piece);
    return static_cast<int>(generated.size()) < o.max_new_tokens;
  };
  if (greedy || on_device) {
    // Decode steps pipelined on the device: the host queues a step while the last one runs.
    if (o.max_new_tokens > 0 && take(next) && position < model.max_context())
      model.decode_stream(next, position, o.max_new_tokens - 1, take, on_device, 1,
                          o.sampling.seed);
  } else {
    for (int i = 0; i < o.max_new_tokens; ++i) {
      if (!take(sample(logits, o.sampling, static_cast<uint64_t>(i)))) break;
      if (position + 1 > model.max_context()) break;
      logits = model.forward({generated.back()}, position++);
    }
  }
  s.generated_tokens = static_cast<int64_t>(generated.size());
  s.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (stats) *stats = s;
  return tok.decode(generated);
}

}  // namespace loom::models
