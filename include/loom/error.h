// loom/error.h — the one exception type Loom throws.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace loom {

// Every user-facing failure (bad shapes, unknown ops, malformed files, wrong run inputs) throws
// loom::Error. Messages start with the op or file they concern: "[matmul] f32[2,3] x f32[4,5]:
// ...".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace loom

#define LOOM_CHECK(cond, ...)               \
  do {                                      \
    if (!(cond)) ::loom::fail(__VA_ARGS__); \
  } while (0)
