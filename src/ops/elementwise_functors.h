// The math of every elementwise op, written once as functors over a compute type T (double or
// int64_t in the reference backend, float or int64_t in the CPU backend). Kernels and the
// stitcher reuse these; an elementwise op's semantics live here and nowhere else.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ir/graph.h"

// The functors run on the host and, compiled by nvcc, in CUDA kernels.
#ifdef __CUDACC__
#define LOOM_HD __host__ __device__
#else
#define LOOM_HD
#endif

namespace loom::ops::fn {

template <class T>
inline constexpr bool kInt = std::is_integral_v<T>;

struct add {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    return a + b;
  }
};
struct sub {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    return a - b;
  }
};
struct mul {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    return a * b;
  }
};
// Integer division truncates toward zero; division by zero gives 0 (never a trap).
struct div {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    if constexpr (kInt<T>)
      return b == 0 ? T(0) : a / b;
    else
      return a / b;
  }
};
struct pow {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    if constexpr (kInt<T>) {
      if (b < 0) return a == 1 ? 1 : (a == -1 ? (b % 2 ? -1 : 1) : 0);
      T r = 1;
      for (; b; b >>= 1, a *= a)
        if (b & 1) r *= a;
      return r;
    } else {
      return std::pow(a, b);
    }
  }
};
struct maximum {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    if constexpr (!kInt<T>)
      if (std::isnan(a) || std::isnan(b)) return a + b;  // propagate NaN
    return a > b ? a : b;
  }
};
struct minimum {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    if constexpr (!kInt<T>)
      if (std::isnan(a) || std::isnan(b)) return a + b;
    return a < b ? a : b;
  }
};
// numpy semantics: the result has the sign of the divisor.
struct mod {
  template <class T>
  LOOM_HD static T apply(T a, T b) {
    if constexpr (kInt<T>) {
      if (b == 0) return 0;
      T r = a % b;
      return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    } else {
      T r = std::fmod(a, b);
      return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
  }
};

struct neg {
  template <class T>
  LOOM_HD static T apply(T x) {
    return -x;
  }
};
struct abs {
  template <class T>
  LOOM_HD static T apply(T x) {
    return x < 0 ? -x : x;
  }
};
struct sign {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T((x > 0) - (x < 0));
  }
};
struct square {
  template <class T>
  LOOM_HD static T apply(T x) {
    return x * x;
  }
};
struct reciprocal {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T(1) / x;
  }
};
struct exp {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::exp(x);
  }
};
struct log {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::log(x);
  }
};
struct sqrt {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::sqrt(x);
  }
};
struct rsqrt {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T(1) / std::sqrt(x);
  }
};
struct sin {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::sin(x);
  }
};
struct cos {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::cos(x);
  }
};
struct tanh {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::tanh(x);
  }
};
struct sigmoid {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T(1) / (T(1) + std::exp(-x));
  }
};
struct silu {
  template <class T>
  LOOM_HD static T apply(T x) {
    return x / (T(1) + std::exp(-x));
  }
};
struct erf {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::erf(x);
  }
};
struct floor {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::floor(x);
  }
};
struct ceil {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::ceil(x);
  }
};
struct round {
  template <class T>
  LOOM_HD static T apply(T x) {
    return std::nearbyint(x);
  }
};  // half to even
struct gelu_erf {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
  }
};
struct gelu_tanh {
  template <class T>
  LOOM_HD static T apply(T x) {
    return T(0.5) * x *
           (T(1) + std::tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)));
  }
};

// Comparisons and logic return bool.
struct equal {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a == b;
  }
};
struct not_equal {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a != b;
  }
};
struct less {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a < b;
  }
};
struct less_equal {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a <= b;
  }
};
struct greater {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a > b;
  }
};
struct greater_equal {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return a >= b;
  }
};
struct logical_and {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return (a != 0) && (b != 0);
  }
};
struct logical_or {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return (a != 0) || (b != 0);
  }
};
struct logical_xor {
  template <class T>
  LOOM_HD static bool apply(T a, T b) {
    return (a != 0) != (b != 0);
  }
};
struct logical_not {
  template <class T>
  LOOM_HD static bool apply(T x) {
    return x == 0;
  }
};

// Calls f.template operator()<Functor>() for a binary op id; returns false if `op` is not one.
template <class F>
bool visit_binary(ir::OpId op, F&& f) {
  namespace o = ir::op;
  switch (op) {
#define LOOM_BIN(name)             \
  case o::name:                    \
    f.template operator()<name>(); \
    return true;
    LOOM_BIN(add)
    LOOM_BIN(sub) LOOM_BIN(mul) LOOM_BIN(div) LOOM_BIN(pow) LOOM_BIN(maximum) LOOM_BIN(minimum)
        LOOM_BIN(mod)
#undef LOOM_BIN
            default : return false;
  }
}
template <class F>
bool visit_compare(ir::OpId op, F&& f) {
  namespace o = ir::op;
  switch (op) {
#define LOOM_CMP(name)             \
  case o::name:                    \
    f.template operator()<name>(); \
    return true;
    LOOM_CMP(equal)
    LOOM_CMP(not_equal) LOOM_CMP(less) LOOM_CMP(less_equal) LOOM_CMP(greater)
        LOOM_CMP(greater_equal) LOOM_CMP(logical_and) LOOM_CMP(logical_or) LOOM_CMP(logical_xor)
#undef LOOM_CMP
            default : return false;
  }
}
// gelu picks its functor from attributes, so callers pass `gelu_tanh` when asked for it.
template <class F>
bool visit_unary(ir::OpId op, bool gelu_tanh_approx, F&& f) {
  namespace o = ir::op;
  switch (op) {
#define LOOM_UN(name)              \
  case o::name:                    \
    f.template operator()<name>(); \
    return true;
    LOOM_UN(neg)
    LOOM_UN(abs) LOOM_UN(sign) LOOM_UN(square) LOOM_UN(reciprocal) LOOM_UN(exp) LOOM_UN(log)
        LOOM_UN(sqrt) LOOM_UN(rsqrt) LOOM_UN(sin) LOOM_UN(cos) LOOM_UN(tanh) LOOM_UN(sigmoid)
            LOOM_UN(silu) LOOM_UN(erf) LOOM_UN(floor) LOOM_UN(ceil) LOOM_UN(round)
                LOOM_UN(logical_not)
#undef LOOM_UN
                    case o::gelu : if (gelu_tanh_approx) f.template operator()<gelu_tanh>();
    else f.template operator()<gelu_erf>();
    return true;
    default:
      return false;
  }
}

}  // namespace loom::ops::fn
