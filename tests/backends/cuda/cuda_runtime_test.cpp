// The CUDA runtime: transfers, executables whose memory lives on the device, variables, errors.
// Every test skips cleanly where no GPU is present (CI builds the backend but has no GPU).
#include <gtest/gtest.h>

#include "loom/loom.h"

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

TEST(CudaRuntime, MissingDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  Graph g;
  auto x = g.placeholder({2}, f32, "x");
  CompileOptions o;
  o.device = Device::cuda(0);
  EXPECT_THROW(g.compile({x + x}, o), Error);
}

}  // namespace
}  // namespace loom
