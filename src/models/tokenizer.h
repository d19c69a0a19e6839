// models/tokenizer.h — byte-level BPE tokenizer (GPT-2 family) built from GGUF metadata.
//
// Reads tokenizer.ggml.{model,pre,tokens,token_type,merges,bos/eos/unknown/padding_token_id,
// add_bos_token} and tokenizer.chat_template. Encoding: control/user-defined tokens written in
// the text ("<|im_start|>") become their ids; the rest is split by the pre-tokenizer named by
// tokenizer.ggml.pre (GPT-2's regex, hand-written and Unicode aware, plus isolated digits for
// "smollm"/"starcoder"-style vocabularies), mapped byte by byte onto GPT-2's printable alphabet
// and merged by rank (lowest first) with a priority queue. Matches Hugging Face `tokenizers`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf.h"

namespace loom::models {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Throws "[tokenizer] <path>: ..." when the metadata is missing, inconsistent or of a kind this
  // tokenizer does not implement (e.g. tokenizer.ggml.model = "llama", SentencePiece).
  static Tokenizer from_gguf(const io::GgufFile& file);

  // Token ids of `text`; `add_bos` prepends the BOS id. With `parse_special`, control and
  // user-defined tokens written in the text are recognised (longest match first).
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false,
                              bool parse_special = true) const;
  // The text of `ids` (control tokens are written as their text unless `skip_special`). Bytes
  // are concatenated first, so a character split across tokens is reassembled.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The bytes of one token (may be an incomplete UTF-8 sequence). Throws for an id out of range.
  std::string token_to_piece(int32_t id) const;

  int32_t vocab_size() const;
  // -1 when the GGUF does not name one.
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t unknown_id() const;
  int32_t padding_id() const;
  bool add_bos_default() const;  // tokenizer.ggml.add_bos_token (false if absent)
  const std::string& pre_type() const;
  // The vocabulary string of `id` as stored (byte-level alphabet, e.g. "Ġthe").
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Id of a vocabulary string, or -1.
  int32_t find_token(std::string_view text) const;
  // True for ids that end generation: EOS and "<|im_end|>"/"<|endoftext|>" style control tokens.
  bool is_end_of_generation(int32_t id) const;

  // Renders messages with the GGUF's chat template. ChatML templates ("<|im_start|>role\n...
  // <|im_end|>\n") are supported, including a default system prompt that the template inserts
  // when the conversation has none (SmolLM2 does). Other templates throw.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;

  // Pre-tokenizer output (the pieces BPE runs on), exposed for tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace loom::models
