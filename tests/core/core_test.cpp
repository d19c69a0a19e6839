// dtype conversions, shapes, NDArray views and .npy files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "loom/loom.h"

namespace loom {
namespace {

TEST(DType, NamesRoundTrip) {
  for (int i = 0; i < kNumDTypes; ++i) {
    auto t = static_cast<DType>(i);
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  }
  EXPECT_THROW(dtype_from_name("f33"), Error);
  EXPECT_EQ(storage_bytes(i4, 3), 2u);
  EXPECT_EQ(storage_bytes(c64, 3), 24u);
}

TEST(DType, HalfConversionsMatchIeee) {
  // Every f16 bit pattern survives f16 -> f32 -> f16, and known values decode exactly.
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));         // smallest subnormal
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);                       // rounds to inf
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625f);
}

TEST(NDArray, ViewsAliasAndCheckBounds) {
  NDArray a = NDArray::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  NDArray t = a.view({3, 2}, {1, 3}, 0);  // transpose, no copy
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  a.data_as<float>()[1] = 10;
  EXPECT_EQ(t.at(2), 10);  // aliases
  EXPECT_THROW(a.view({4, 2}, {1, 3}, 0), Error);
  EXPECT_THROW(a.view({2}, {1}, 5), Error);
  // frames of a signal: overlapping windows with a hop, zero copy
  NDArray sig = NDArray::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10});
  NDArray frames = sig.view({4, 4}, {2, 1}, 0);
  EXPECT_EQ(frames.storage(), sig.storage());
  EXPECT_EQ(frames.contiguous().to_vector<float>()[5], 3);
  EXPECT_EQ(a.reshape({3, -1}).shape(), Shape({3, 2}));
  EXPECT_THROW(a.reshape({4, -1}), Error);
}

TEST(NDArray, ConversionsSaturateAndRound) {
  NDArray a = NDArray::from_vector<float>({-300.f, 1.5f, 2.5f, 300.f}, {4});
  EXPECT_EQ(a.astype(i8).to_vector<int>(), (std::vector<int>{-128, 2, 2, 127}));
  NDArray q = NDArray::from_vector<double>({-8, 7, 3, -1, 5}, {5}, i4);
  EXPECT_EQ(q.nbytes(), 3u);
  EXPECT_EQ(q.to_vector<int>(), (std::vector<int>{-8, 7, 3, -1, 5}));
  EXPECT_EQ(static_cast<const uint8_t*>(q.data())[0], 0x78);  // low nibble = even index
}

TEST(Npy, RoundTripsEveryDtype) {
  std::mt19937 rng(std::random_device{}());
  std::string path = ::testing::TempDir() + "/loom_roundtrip.npy";
  for (DType t : {f32, f16, f64, i8, u8, i16, i32, i64, boolean}) {
    NDArray a = random_uniform({3, 5}, t, -50, 50, rng());
    a.save_npy(path);
    NDArray b = NDArray::load_npy(path);
    EXPECT_EQ(b.type(), a.type());
    EXPECT_EQ(b.to_doubles(), a.to_doubles()) << dtype_name(t);
  }
  NDArray s = NDArray::from_vector<float>({1, 2, 3, 4}, {2, 2}).view({2, 2}, {1, 2}, 0);
  s.save_npy(path);
  EXPECT_EQ(NDArray::load_npy(path).to_vector<float>(), (std::vector<float>{1, 3, 2, 4}));
}

TEST(Npy, RejectsBadFiles) {
  std::string path = ::testing::TempDir() + "/loom_bad.npy";
  EXPECT_THROW(NDArray::load_npy(path + ".missing"), Error);
  {
    std::ofstream f(path, std::ios::binary);
    f << "not numpy";
  }
  EXPECT_THROW(NDArray::load_npy(path), Error);
  NDArray a = random_uniform({100}, f32, 0, 1, 1);
  a.save_npy(path);
  // Truncate the data: a clear error, not a short read.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 10));
  }
  try {
    NDArray::load_npy(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom
