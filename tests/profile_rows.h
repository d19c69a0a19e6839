// Reading PreparedRun / Executable profile tables in tests: rows "op ms share% steps us/step".
#pragma once
#include <cstdint>
#include <sstream>
#include <string>

namespace loom::testing {

// The step count of `op`'s row in a profile table, or -1 when the table has no such row.
inline int64_t profile_steps(const std::string& prof, const std::string& op) {
  auto row = prof.find("\n" + op + " ");
  if (row == std::string::npos) return -1;
  std::istringstream line(prof.substr(row + 1));
  std::string name, share;
  double ms = 0;
  int64_t steps = -1;
  line >> name >> ms >> share >> steps;
  return steps;
}

}  // namespace loom::testing
