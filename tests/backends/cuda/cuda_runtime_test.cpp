// The CUDA runtime: transfers, executables whose memory lives on the device, variables, errors.
// Every test skips cleanly where no GPU is present (CI builds the backend but has no GPU).
#include <gtest/gtest.h>

#include <cstring>

#ifdef LOOM_HAS_CUDA
#include <cuda_runtime_api.h>
#endif

#include "loom/loom.h"
#include "loom/prepared_run.h"
#include "run_modes.h"

namespace loom {
namespace {

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU"

TEST(CudaRuntime, TransfersRoundTrip) {
  REQUIRE_GPU();
  NDArray a = random_uniform({3, 5}, f32, -1, 1, 3);
  NDArray d = to_device(a, Device::cuda(0));
  EXPECT_EQ(d.device(), Device::cuda(0));
  EXPECT_THROW(d.to_doubles(), Error);  // host code never reads device memory
  EXPECT_EQ(to_host(d).to_vector<float>(), a.to_vector<float>());
}

// Large transfers go through the backend's pinned buffers in chunks (odd size: a partial chunk).
TEST(CudaRuntime, LargeTransfersRoundTrip) {
  REQUIRE_GPU();
  NDArray a = random_uniform({5, 3'000'017}, f32, -1, 1, 11);  // 60 MB: 8 chunks, the last partial
  NDArray d = to_device(a, Device::cuda(0));
  NDArray back = to_host(d);
  EXPECT_EQ(std::memcmp(back.data(), a.data(), a.nbytes()), 0);
  NDArray twice = to_host(to_device(back, Device::cuda(0)));
  EXPECT_EQ(std::memcmp(twice.data(), a.data(), a.nbytes()), 0);
}

TEST(CudaRuntime, HostInHostOutDeviceInDeviceOut) {
  REQUIRE_GPU();
  Graph g;
  auto x = g.placeholder({4}, f32, "x");
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable exe =
      g.compile({exp(x) + g.constant(NDArray::from_vector<float>({1, 2, 3, 4}, {4}))}, o);
  NDArray in = NDArray::from_vector<float>({0, 0, 0, 0}, {4});
  auto host = exe.run({{"x", in}});
  EXPECT_EQ(host[0].device(), Device::cpu());
  EXPECT_EQ(host[0].to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  auto dev = exe.run({{"x", to_device(in, Device::cuda(0))}});
  EXPECT_EQ(dev[0].device(), Device::cuda(0));
  EXPECT_EQ(to_host(dev[0]).to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
}

TEST(CudaRuntime, VariablesLiveOnTheDevice) {
  REQUIRE_GPU();
  Graph g;
  auto acc = g.variable(NDArray::from_vector<float>({1, 1}, {2}), "acc");
  auto x = g.placeholder({2}, f32, "x");
  auto next = g.read(acc) + x;
  g.assign(acc, next);
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable exe = g.compile({next}, o);
  NDArray one = NDArray::from_vector<float>({1, 2}, {2});
  exe.run({{"x", one}});
  auto r = exe.run({{"x", one}});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{3, 5}));
  EXPECT_EQ(exe.variable("acc").to_vector<float>(), (std::vector<float>{3, 5}));
  exe.reset_variables();
  EXPECT_EQ(exe.variable("acc").to_vector<float>(), (std::vector<float>{1, 1}));
}

// A KV-cache write of rotated keys on the GPU: fuse_rope_into_write_slice makes it one
// rope_write_slice kernel (starts read on the device); the cache after several steps equals the
// CPU's, and a start past the cache's end is raised at the next sync naming the fused op.
TEST(CudaRuntime, RopeWriteSliceUpdatesTheCacheAndReportsBadStarts) {
  REQUIRE_GPU();
  Graph g;
  auto k = g.placeholder({1, 2, -1, 16}, f32, "k");
  auto pos = g.placeholder({-1}, i32, "pos");
  auto at = g.placeholder({4}, i64, "at");
  auto cache = g.variable(zeros({1, 2, 8, 16}), "k_cache");
  auto keys = slice_update(g.read(cache), rope(k, pos, {.interleaved = true, .rotary_dim = 8}), at);
  g.assign(cache, keys);
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable gpu = g.compile({sum(keys, {2})}, o);
  Executable cpu = g.compile({sum(keys, {2})});
  ASSERT_NE(gpu.to_text().find("rope_write_slice("), std::string::npos) << gpu.to_text();
  auto step = [](int64_t p, int64_t len, uint64_t seed) {
    std::vector<int32_t> ps;
    for (int64_t i = 0; i < len; ++i) ps.push_back(static_cast<int32_t>(p + i));
    return Feeds{{"k", random_uniform({1, 2, len, 16}, f32, -1, 1, seed)},
                 {"pos", NDArray::from_vector<int32_t>(ps, {len})},
                 {"at", NDArray::from_vector<int64_t>({0, 0, p, 0}, {4})}};
  };
  int64_t p = 0;
  for (int64_t len : {3, 1, 1, 2}) {
    auto f = step(p, len, static_cast<uint64_t>(100 + p));
    auto a = gpu.run(f)[0].to_doubles(), b = cpu.run(f)[0].to_doubles();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "step at " << p;
    p += len;
  }
  auto a = gpu.variable("k_cache").to_doubles(), b = cpu.variable("k_cache").to_doubles();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
  try {
    gpu.run(step(7, 2, 5));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("[rope_write_slice] start 7 + size 2 on axis 2 exceeds dim 8"),
        std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(gpu.run(step(6, 2, 6)));  // the record was cleared
}

TEST(CudaRuntime, MissingDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  Graph g;
  auto x = g.placeholder({2}, f32, "x");
  CompileOptions o;
  o.device = Device::cuda(0);
  EXPECT_THROW(g.compile({x + x}, o), Error);
}

#ifdef LOOM_HAS_CUDA
// The app's own stream: its work before the run (writing the input) and after it (reading the
// output) is ordered with Loom's by events alone; only the app's stream is synchronised.
TEST(CudaRuntime, RunsSequencedWithTheCallersStream) {
  REQUIRE_GPU();
  Graph g;
  auto x = g.placeholder({1 << 20}, f32, "x");
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable exe = g.compile({tanh(x) * 2.0 + x}, o);
  NDArray host = random_uniform({1 << 20}, f32, -2, 2, 17);
  cudaStream_t app;
  ASSERT_EQ(cudaStreamCreateWithFlags(&app, cudaStreamNonBlocking), cudaSuccess);
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, host.nbytes()), cudaSuccess);
  std::memcpy(pinned, host.data(), host.nbytes());
  NDArray in = to_device(NDArray::empty(f32, {1 << 20}), Device::cuda(0));
  // Asynchronous upload on the app's stream: the run must wait for it.
  ASSERT_EQ(cudaMemcpyAsync(in.data(), pinned, host.nbytes(), cudaMemcpyHostToDevice, app),
            cudaSuccess);
  auto out = exe.run({{"x", in}}, {.cuda_stream = app});
  ASSERT_EQ(out[0].device(), Device::cuda(0));
  std::vector<float> got(static_cast<size_t>(1 << 20));
  ASSERT_EQ(cudaMemcpyAsync(got.data(), out[0].data(), host.nbytes(), cudaMemcpyDeviceToHost, app),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(app), cudaSuccess);
  auto want = g.compile({tanh(x) * 2.0 + x}).run({{"x", host}})[0].to_vector<float>();
  for (size_t i = 0; i < got.size(); i += 1009) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  cudaFreeHost(pinned);
  cudaStreamDestroy(app);
}
#endif

TEST(CudaRuntime, CallersStreamNeedsACudaExecutable) {
  Graph g;
  auto x = g.placeholder({2}, f32, "x");
  Executable exe = g.compile({x + x});
  int not_a_stream = 0;
  EXPECT_THROW(
      exe.run({{"x", NDArray::from_vector<float>({1, 2}, {2})}}, {.cuda_stream = &not_a_stream}),
      Error);
}

// PreparedRun::enqueue / wait: x' = x * 0.5 + k, with x fed back on the device and k a fresh host
// feed per run; two runs in flight; the host recomputes the sequence (every step exact in f32:
// x * 0.5 is exact, then one rounding). x sits between the fed inputs k and b in the input
// buffer, so staging k and b must not overwrite it. On the CPU backend, and on a GPU eager and as
// a replayed CUDA graph.
TEST(PreparedRunPipeline, FeedbackAndReadsMatchTheHost) {
  for (const auto& c : testing::run_modes()) {
    SCOPED_TRACE(c.name());
    Graph g;
    auto k = g.placeholder({1}, f32, "k");
    auto x = g.placeholder({5}, f32, "x");
    auto b = g.placeholder({1}, f32, "b");
    CompileOptions o;
    o.device = c.device;
    Executable exe = g.compile({x * 0.5 + k, sum(x, {0}), b * 2.0}, o);
    PreparedRun pr(exe, {{"k", Shape({1})}, {"x", Shape({5})}, {"b", Shape({1})}},
                   {.cuda_graph = c.cuda_graph});
    NDArray x0 = random_uniform({5}, f32, -4, 4, 17), ks = random_uniform({12}, f32, -1, 1, 18);
    NDArray bs = random_uniform({12}, f32, -1, 1, 19);
    std::vector<float> host = x0.to_vector<float>();
    auto at = [](const NDArray& a, int i) {
      return NDArray::from_vector<float>({a.data_as<float>()[i]}, {1});
    };
    const std::vector<PreparedRun::Feedback> back = {{0, "x"}};
    uint64_t ticket = pr.enqueue({{"x", x0}, {"k", at(ks, 0)}, {"b", at(bs, 0)}}, back, {0, 1, 2});
    for (int i = 0; i < 12; ++i) {
      // The next run goes in before this one is waited for; its x comes from this run.
      const uint64_t next =
          i + 1 < 12 ? pr.enqueue({{"k", at(ks, i + 1)}, {"b", at(bs, i + 1)}}, back, {0, 1, 2})
                     : 0;
      std::vector<NDArray> r = pr.wait(ticket);
      ASSERT_EQ(r.size(), 3u);
      EXPECT_EQ(r[0].device(), Device::cpu());
      float sum = 0;
      for (float& v : host) sum += v, v = v * 0.5f + ks.data_as<float>()[i];
      EXPECT_EQ(r[0].to_vector<float>(), host) << "run " << i;
      EXPECT_NEAR(r[1].data_as<float>()[0], sum, 1e-5) << "run " << i;
      EXPECT_EQ(r[2].data_as<float>()[0], 2 * bs.data_as<float>()[i]) << "run " << i;
      ticket = next;
    }
    // Only the last two runs can be waited for; types must match for feedback.
    EXPECT_THROW(pr.wait(1), Error);
    EXPECT_THROW(pr.enqueue({}, {{1, "x"}}), Error);  // f32 [] into f32 [5]
    EXPECT_THROW(pr.enqueue({}, {{5, "x"}}), Error);  // no output 5
    EXPECT_THROW(pr.enqueue({}, {{0, "y"}}), Error);  // no input y
    EXPECT_THROW(pr.enqueue({}, {}, {3}), Error);     // no output 3 to read
    if (c.cuda_graph) {
      EXPECT_TRUE(pr.graph_captured()) << pr.graph_status();
    }
  }
}

}  // namespace
}  // namespace loom
