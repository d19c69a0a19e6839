#include "models/llama_synthetic.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "loom/error.h"

namespace loom::models {
namespace {

struct Fmt {
  uint32_t ggml_type;
  int block_bytes;
  double quant_std;  // std of the integer quant
};
Fmt format_of(const std::string& f) {
  if (f == "q4_0") return {2, 18, 4.61};
  if (f == "q4_1") return {3, 20, 4.61};
  if (f == "q8_0") return {8, 34, 73.9};
  fail("[synthetic llama] format '", f, "' is not supported (q4_0, q4_1, q8_0)");
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint16_t f16_bits(float f) {  // normal range only (the scales here are 1e-4 .. 1)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
  int he = static_cast<int>(e) - 127 + 15;
  if (he <= 0) return static_cast<uint16_t>(sign);
  if (he >= 31) return static_cast<uint16_t>(sign | 0x7bff);
  uint32_t hm = (m + 0x1000) >> 13;  // round to nearest
  if (hm == 0x400) hm = 0, ++he;
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(he) << 10) | hm);
}

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: ne0 (row length) first
  std::string format;          // "" : f32 norm vector
  double std = 1;              // of the decoded values
  uint64_t nbytes = 0, offset = 0;
};

class Writer {
 public:
  explicit Writer(const std::string& path) : f_(std::fopen(path.c_str(), "wb")), path_(path) {
    LOOM_CHECK(f_, "[synthetic llama] cannot write ", path);
  }
  ~Writer() {
    if (f_) std::fclose(f_);
  }
  void bytes(const void* p, size_t n) {
    LOOM_CHECK(std::fwrite(p, 1, n, f_) == n, "[synthetic llama] write to ", path_, " failed");
    written_ += static_cast<int64_t>(n);
  }
  template <class T>
  void put(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void key_u32(const std::string& k, uint32_t v) { str(k), put<uint32_t>(4), put<uint32_t>(v); }
  void key_f32(const std::string& k, float v) { str(k), put<uint32_t>(6), put<float>(v); }
  void key_str(const std::string& k, const std::string& v) { str(k), put<uint32_t>(8), str(v); }
  void key_strs(const std::string& k, const std::vector<std::string>& v) {
    str(k), put<uint32_t>(9), put<uint32_t>(8), put<uint64_t>(v.size());
    for (const auto& s : v) str(s);
  }
  void pad(int64_t align) {
    static const char zeros[64] = {};
    while (written_ % align)
      bytes(zeros, static_cast<size_t>(std::min<int64_t>(align - written_ % align, 64)));
  }
  int64_t written() const { return written_; }
  void close() {
    LOOM_CHECK(std::fclose(f_) == 0, "[synthetic llama] closing ", path_, " failed");
    f_ = nullptr;
  }

 private:
  std::FILE* f_;
  std::string path_;
  int64_t written_ = 0;
};

// GPT-2's byte -> code point map (printable bytes map to themselves).
std::string byte_token(int b) {
  std::vector<int> bs;
  for (int i = 33; i <= 126; ++i) bs.push_back(i);
  for (int i = 161; i <= 172; ++i) bs.push_back(i);
  for (int i = 174; i <= 255; ++i) bs.push_back(i);
  uint32_t cp = 0;
  bool direct = false;
  for (int x : bs) direct |= x == b;
  if (direct) {
    cp = static_cast<uint32_t>(b);
  } else {
    int n = 0;
    for (int i = 0; i < 256; ++i) {
      bool in = false;
      for (int x : bs) in |= x == i;
      if (in) continue;
      if (i == b) break;
      ++n;
    }
    cp = 256 + static_cast<uint32_t>(n);
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 63));
  }
  return s;
}

void fill(const TensorSpec& t, uint64_t seed, std::vector<uint8_t>& buf) {
  buf.resize(t.nbytes);
  uint64_t s = seed;
  if (t.format.empty()) {  // norm weights in [0.8, 1.2)
    auto* p = reinterpret_cast<float*>(buf.data());
    for (uint64_t i = 0; i < t.dims[0]; ++i)
      p[i] = 0.8f + 0.4f * static_cast<float>(splitmix(s) >> 40) / 16777216.0f;
    return;
  }
  Fmt f = format_of(t.format);
  size_t n8 = t.nbytes / 8;
  auto* w = reinterpret_cast<uint64_t*>(buf.data());
  for (size_t i = 0; i < n8; ++i) w[i] = splitmix(s);
  for (size_t i = n8 * 8; i < t.nbytes; ++i) buf[i] = static_cast<uint8_t>(splitmix(s));
  // Scales: the decoded values get std `t.std` (each block's scale jittered by ±25%).
  double d0 = t.std / f.quant_std;
  uint64_t blocks = t.nbytes / static_cast<uint64_t>(f.block_bytes);
  for (uint64_t b = 0; b < blocks; ++b) {
    uint8_t* p = buf.data() + b * static_cast<uint64_t>(f.block_bytes);
    float d = static_cast<float>(d0 * (0.75 + 0.5 * static_cast<double>(p[2] ^ p[5]) / 255.0));
    uint16_t h = f16_bits(d);
    std::memcpy(p, &h, 2);
    if (f.ggml_type == 3) {  // q4_1: x = q·d + m with m = −7.5·d (zero mean)
      uint16_t m = f16_bits(-7.5f * d);
      std::memcpy(p + 2, &m, 2);
    }
  }
}

}  // namespace

SyntheticLlamaSpec mistral_7b_shape(const std::string& format) {
  SyntheticLlamaSpec s;
  s.n_layers = 32, s.d_model = 4096, s.n_heads = 32, s.n_kv_heads = 8, s.d_ff = 14336;
  s.vocab = 32000, s.context_length = 32768, s.rope_theta = 1e6;
  s.format = format, s.embed_format = format, s.tied_embeddings = false;
  return s;
}

SyntheticLlamaSpec smollm2_135m_shape() {
  SyntheticLlamaSpec s;
  s.n_layers = 30, s.d_model = 576, s.n_heads = 9, s.n_kv_heads = 3, s.d_ff = 1536;
  s.vocab = 49152, s.context_length = 8192, s.rope_theta = 100000;
  s.format = "q4_1", s.embed_format = "q8_0", s.tied_embeddings = true;
  return s;
}

int64_t write_synthetic_llama_gguf(const std::string& path, const SyntheticLlamaSpec& sp) {
  LOOM_CHECK(sp.n_layers > 0 && sp.d_model > 0 && sp.n_heads > 0 && sp.n_kv_heads > 0 &&
                 sp.d_model % sp.n_heads == 0 && sp.n_heads % sp.n_kv_heads == 0 &&
                 sp.d_model % 32 == 0 && sp.d_ff % 32 == 0 && sp.vocab > 257,
             "[synthetic llama] inconsistent shape (width ", sp.d_model, ", heads ", sp.n_heads,
             "/", sp.n_kv_heads, ", ffn ", sp.d_ff, ", vocab ", sp.vocab,
             "; widths must be multiples of 32, vocab > 257)");
  const int64_t D = sp.d_model / sp.n_heads, kv = sp.n_kv_heads * D;
  std::vector<TensorSpec> ts;
  auto mat = [&](const std::string& name, int64_t cols, int64_t rows, const std::string& fmt,
                 double std) {
    Fmt f = format_of(fmt);
    ts.push_back({name,
                  {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)},
                  fmt,
                  std,
                  static_cast<uint64_t>(rows * (cols / 32) * f.block_bytes),
                  0});
  };
  auto vec = [&](const std::string& name, int64_t n) {
    ts.push_back({name, {static_cast<uint64_t>(n)}, "", 1, static_cast<uint64_t>(n * 4), 0});
  };
  mat("token_embd.weight", sp.d_model, sp.vocab, sp.embed_format, 1.0);
  for (int64_t l = 0; l < sp.n_layers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    double sd = 1 / std::sqrt(static_cast<double>(sp.d_model));
    vec(p + "attn_norm.weight", sp.d_model);
    mat(p + "attn_q.weight", sp.d_model, sp.d_model, sp.format, sd);
    mat(p + "attn_k.weight", sp.d_model, kv, sp.format, sd);
    mat(p + "attn_v.weight", sp.d_model, kv, sp.format, sd);
    mat(p + "attn_output.weight", sp.d_model, sp.d_model, sp.format, sd);
    vec(p + "ffn_norm.weight", sp.d_model);
    mat(p + "ffn_gate.weight", sp.d_model, sp.d_ff, sp.format, sd);
    mat(p + "ffn_up.weight", sp.d_model, sp.d_ff, sp.format, sd);
    mat(p + "ffn_down.weight", sp.d_ff, sp.d_model, sp.format,
        1 / std::sqrt(static_cast<double>(sp.d_ff)));
  }
  vec("output_norm.weight", sp.d_model);
  if (!sp.tied_embeddings)
    mat("output.weight", sp.d_model, sp.vocab, sp.embed_format,
        1 / std::sqrt(static_cast<double>(sp.d_model)));
  uint64_t off = 0;
  for (auto& t : ts) {
    t.offset = off;
    off += (t.nbytes + 31) / 32 * 32;
  }

  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_token(b));
  for (int64_t i = 256; i < sp.vocab - 1; ++i) tokens.push_back("<|t" + std::to_string(i) + "|>");
  tokens.push_back("<|endoftext|>");

  Writer w(path);
  w.bytes("GGUF", 4);
  w.put<uint32_t>(3);
  w.put<uint64_t>(ts.size());
  w.put<uint64_t>(15);  // metadata keys below
  w.key_str("general.architecture", "llama");
  w.key_str("general.name", "synthetic");
  w.key_u32("llama.block_count", static_cast<uint32_t>(sp.n_layers));
  w.key_u32("llama.context_length", static_cast<uint32_t>(sp.context_length));
  w.key_u32("llama.embedding_length", static_cast<uint32_t>(sp.d_model));
  w.key_u32("llama.feed_forward_length", static_cast<uint32_t>(sp.d_ff));
  w.key_u32("llama.attention.head_count", static_cast<uint32_t>(sp.n_heads));
  w.key_u32("llama.attention.head_count_kv", static_cast<uint32_t>(sp.n_kv_heads));
  w.key_f32("llama.rope.freq_base", static_cast<float>(sp.rope_theta));
  w.key_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(sp.rms_eps));
  w.key_u32("llama.vocab_size", static_cast<uint32_t>(sp.vocab));
  w.key_str("tokenizer.ggml.model", "gpt2");
  w.key_strs("tokenizer.ggml.tokens", tokens);
  w.key_strs("tokenizer.ggml.merges", {});
  w.key_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(sp.vocab - 1));
  for (const auto& t : ts) {
    w.str(t.name);
    w.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) w.put<uint64_t>(d);
    w.put<uint32_t>(t.format.empty() ? 0 : format_of(t.format).ggml_type);
    w.put<uint64_t>(t.offset);
  }
  w.pad(32);
  std::vector<uint8_t> buf;
  uint64_t k = 0;
  for (const auto& t : ts) {
    fill(t, sp.seed * 0x100000001B3ull + (++k) * 0x9E3779B97F4A7C15ull, buf);
    w.bytes(buf.data(), buf.size());
    w.pad(32);
  }
  w.close();
  return w.written();
}

}  // namespace loom::models
