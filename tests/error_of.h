// The message of the loom::Error a call throws, for tests of bad input.
#pragma once
#include <functional>
#include <string>

#include "loom/loom.h"

namespace loom::testing {

// The message of the loom::Error that f throws, or "no error".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace loom::testing
