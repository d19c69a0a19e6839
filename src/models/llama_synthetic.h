// models/llama_synthetic.h — Llama-family GGUF files with random weights, written in seconds at
// any shape (a Mistral-7B-shaped int4 model for decode benchmarks, small ones for device tests).
#pragma once
#include <cstdint>
#include <string>

namespace loom::models {

struct SyntheticLlamaSpec {
  int64_t n_layers = 2, d_model = 256, n_heads = 4, n_kv_heads = 2, d_ff = 512, vocab = 1024;
  int64_t context_length = 4096;
  std::string format = "q4_0";        // projections: q4_0, q4_1 or q8_0 (GGUF blocks)
  std::string embed_format = "q8_0";  // token_embd, and output.weight when not tied
  bool tied_embeddings = true;        // no output.weight: the head reuses token_embd
  double rope_theta = 10000, rms_eps = 1e-5;
  uint64_t seed = 1;
};

// Mistral-7B's shape (32 layers, width 4096, ffn 14336, heads 32/8, vocab 32000, untied head),
// projections q4_0, head and embeddings q8_0... or `format` for all of them.
SyntheticLlamaSpec mistral_7b_shape(const std::string& format = "q4_0");
// SmolLM2-135M's shape and formats (30 layers, width 576, ffn 1536, heads 9/3, vocab 49152,
// q4_1 projections, q8_0 tied embeddings) — the speed of the real file, random values.
SyntheticLlamaSpec smollm2_135m_shape();

// Writes a valid GGUF v3 file: architecture "llama", a byte-level BPE vocabulary of spec.vocab
// tokens (the 256 byte tokens, then placeholders; no merges), f32 norms near 1, and packed blocks
// with random quants whose scales give every projection unit-variance outputs. Throws loom::Error
// on a bad spec or an I/O failure. Returns the bytes written.
int64_t write_synthetic_llama_gguf(const std::string& path, const SyntheticLlamaSpec& spec);

}  // namespace loom::models
