// StridedIndex and its host-side construction: broadcast strides, and collapsing of
// dims that are contiguous in every operand so that the device does fewer divisions per element.
#pragma once
#include <array>
#include <vector>

#include "backends/cuda/cuda_common.h"
#include "loom/shape.h"

// The host compiler also reads this header (matmul.cpp): device qualifiers and unrolling for nvcc.
#ifdef __CUDACC__
#define LOOM_CUDA_HD __host__ __device__ __forceinline__
#define LOOM_UNROLL _Pragma("unroll")
#else
#define LOOM_CUDA_HD inline
#define LOOM_UNROLL
#endif

namespace loom::backends::cuda {

inline constexpr int kMaxRank = 8;

// Up to kMaxRank dims: the output's shape and each operand's element strides (0: broadcast).
template <int N>
struct StridedIndex {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t stride[N][kMaxRank] = {};
  // Offsets of flat output index `flat` in each operand.
  LOOM_CUDA_HD void offsets(int64_t flat, int64_t* off) const {
    LOOM_UNROLL
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t q = flat / shape[d];
      int64_t r = flat - q * shape[d];
      flat = q;
      LOOM_UNROLL
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
    }
  }
};

// Strides (elements) to read a contiguous array of shape `in` as if broadcast to `out`.
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(static_cast<size_t>(out.rank()), 0);
  int64_t s = 1;
  for (int i = in.rank() - 1; i >= 0; --i) {
    int o = i + out.rank() - in.rank();
    st[static_cast<size_t>(o)] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

template <int N>
StridedIndex<N> make_index(const std::vector<int64_t>& shape,
                           const std::array<std::vector<int64_t>, N>& strides) {
  std::vector<int64_t> sh;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sh.empty();
    for (int k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sh.back() *= shape[d];
      for (int k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sh.push_back(shape[d]);
      for (int k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  LOOM_CHECK(sh.size() <= static_cast<size_t>(kMaxRank), "[cuda] rank ", sh.size(),
             " after collapsing dims is over the CUDA backend's limit of ", kMaxRank);
  StridedIndex<N> ix;
  ix.rank = static_cast<int>(sh.size());
  for (size_t d = 0; d < sh.size(); ++d) {
    ix.shape[d] = sh[d];
    for (int k = 0; k < N; ++k) ix.stride[k][d] = st[k][d];
  }
  return ix;
}

inline std::vector<int64_t> dims_of(const Shape& s) {
  return std::vector<int64_t>(s.dims().begin(), s.dims().end());
}

}  // namespace loom::backends::cuda
