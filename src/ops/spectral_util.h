// Host-side spectral helpers shared by type inference, the builders and the backends' window
// kernels: window functions in double precision.
#pragma once
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

namespace loom::spectral {

inline bool valid_window_kind(std::string_view k) {
  return k == "hann" || k == "hamming" || k == "blackman" || k == "gaussian";
}

// torch.*_window / scipy.signal.get_window: a periodic window of length n is the symmetric window
// of length n + 1 without its last sample. `param` is the gaussian std in samples.
inline std::vector<double> window_values(std::string_view kind, int64_t n, bool periodic,
                                         double param) {
  std::vector<double> w(static_cast<size_t>(n));
  if (n == 1) {
    w[0] = 1;
    return w;
  }
  const double m = static_cast<double>(periodic ? n : n - 1);  // symmetric length - 1
  const double pi = 3.14159265358979323846;
  for (int64_t i = 0; i < n; ++i) {
    double k = static_cast<double>(i), v = 0;
    if (kind == "hann")
      v = 0.5 - 0.5 * std::cos(2 * pi * k / m);
    else if (kind == "hamming")
      v = 0.54 - 0.46 * std::cos(2 * pi * k / m);
    else if (kind == "blackman")
      v = 0.42 - 0.5 * std::cos(2 * pi * k / m) + 0.08 * std::cos(4 * pi * k / m);
    else if (kind == "gaussian") {
      double z = (k - m / 2) / param;
      v = std::exp(-0.5 * z * z);
    }
    w[static_cast<size_t>(i)] = v;
  }
  return w;
}

}  // namespace loom::spectral
