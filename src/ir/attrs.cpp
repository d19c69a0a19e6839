#include "loom/attrs.h"

#include <cstring>
#include <sstream>

namespace loom {
namespace detail {

std::vector<std::string_view> split_field_names(std::string_view names) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < names.size()) {
    size_t j = names.find(',', i);
    if (j == std::string_view::npos) j = names.size();
    std::string_view s = names.substr(i, j - i);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (!s.empty()) out.push_back(s);
    i = j + 1;
  }
  return out;
}

size_t hash_combine(size_t seed, size_t v) {
  return seed ^ (v + 0x9e3779b97f4a7c15ull + (seed << 6) + (seed >> 2));
}

static size_t hash_bytes(const void* p, size_t n) {
  // FNV-1a over 8-byte words: fast enough to hash constants once per compile.
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

size_t hash_attr_value(const AttrValue& v) {
  return std::visit(
      [](const auto& x) -> size_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, NDArray>) {
          if (!x.defined()) return 0;
          NDArray c = x.contiguous();
          return hash_combine(std::hash<std::string>()(c.type().to_string()),
                              hash_bytes(c.data(), c.nbytes()));
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                             std::is_same_v<T, std::vector<double>>) {
          size_t h = x.size();
          for (auto e : x) h = hash_combine(h, std::hash<typename T::value_type>()(e));
          return h;
        } else {
          return std::hash<T>()(x);
        }
      },
      v);
}

}  // namespace detail

std::string attr_value_to_string(const AttrValue& v) {
  std::ostringstream os;
  os.precision(17);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          os << (x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << '"';
          for (char c : x) {
            if (c == '\n') {  // IR text is line based: newlines travel escaped
              os << "\\n";
              continue;
            }
            if (c == '"' || c == '\\') os << '\\';
            os << c;
          }
          os << '"';
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                             std::is_same_v<T, std::vector<double>>) {
          os << "[";
          for (size_t i = 0; i < x.size(); ++i) {
            os << (i ? "," : "");
            if constexpr (std::is_same_v<T, std::vector<double>>) {
              os << x[i];
              if (x[i] == static_cast<double>(static_cast<int64_t>(x[i]))) os << ".0";
            } else {
              os << x[i];
            }
          }
          os << "]";
        } else if constexpr (std::is_same_v<T, NDArray>) {
          os << x.to_string(1 << 30);
        } else if constexpr (std::is_same_v<T, double>) {
          os << x;
          if (x == static_cast<double>(static_cast<int64_t>(x)) && std::abs(x) < 1e15) os << ".0";
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

std::string Attrs::to_string() const {
  std::string s;
  for (const auto& [name, v] : fields()) {
    s += s.empty() ? "{" : ", ";
    if (const auto* a = std::get_if<NDArray>(&v); a && a->numel() > 64)
      s += name + "=" + a->type().to_string() + "<" + std::to_string(a->nbytes()) + " bytes>";
    else
      s += name + "=" + attr_value_to_string(v);
  }
  return s.empty() ? s : s + "}";
}

}  // namespace loom
