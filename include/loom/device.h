// loom/device.h — where an executable runs.
#pragma once
#include <string>

namespace loom {

struct Device {
  // reference: the plain-loop oracle backend every other backend is tested against.
  enum class Kind { cpu, cuda, reference };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {Kind::cpu, 0}; }
  static Device cuda(int i = 0) { return {Kind::cuda, i}; }
  static Device reference() { return {Kind::reference, 0}; }
  std::string to_string() const;
  static Device parse(const std::string& s);  // "cpu", "cuda:0", "reference"
  bool operator==(const Device&) const = default;
};

}  // namespace loom
