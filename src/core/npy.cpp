// .npy reader/writer (NumPy format 1.0-3.0, C order, little endian). Never trusts the file.
#include <cstring>
#include <fstream>
#include <sstream>

#include "loom/ndarray.h"

namespace loom {
namespace {

const char* npy_descr(DType t) {
  switch (t) {
    case DType::f32:
      return "<f4";
    case DType::f64:
      return "<f8";
    case DType::f16:
      return "<f2";
    case DType::i8:
      return "|i1";
    case DType::u8:
      return "|u1";
    case DType::i16:
      return "<i2";
    case DType::i32:
      return "<i4";
    case DType::i64:
      return "<i8";
    case DType::boolean:
      return "|b1";
    case DType::c64:
      return "<c8";
    default:
      return nullptr;
  }
}

DType dtype_from_descr(const std::string& d, const std::string& path) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::i8, DType::u8, DType::i16, DType::i32,
                  DType::i64, DType::boolean, DType::c64}) {
    std::string s = npy_descr(t);
    if (d == s || (d.size() == 3 && s[0] == '|' && d.substr(1) == s.substr(1))) return t;
  }
  fail("[npy] ", path, ": unsupported dtype '", d, "'");
}

// Extracts the value text of `key` in the header dict.
std::string header_field(const std::string& h, const std::string& key, const std::string& path) {
  size_t k = h.find("'" + key + "'");
  LOOM_CHECK(k != std::string::npos, "[npy] ", path, ": header has no '", key, "'");
  size_t colon = h.find(':', k);
  LOOM_CHECK(colon != std::string::npos, "[npy] ", path, ": malformed header");
  size_t start = h.find_first_not_of(' ', colon + 1);
  LOOM_CHECK(start != std::string::npos, "[npy] ", path, ": malformed header");
  char open = h[start];
  size_t end;
  if (open == '\'') {
    end = h.find('\'', start + 1);
    LOOM_CHECK(end != std::string::npos, "[npy] ", path, ": malformed header");
    return h.substr(start + 1, end - start - 1);
  }
  if (open == '(') {
    end = h.find(')', start);
    LOOM_CHECK(end != std::string::npos, "[npy] ", path, ": malformed header");
    return h.substr(start + 1, end - start - 1);
  }
  end = h.find_first_of(",}", start);
  LOOM_CHECK(end != std::string::npos, "[npy] ", path, ": malformed header");
  return h.substr(start, end - start);
}

}  // namespace

NDArray NDArray::load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "[npy] cannot open '", path, "'");
  char magic[8];
  f.read(magic, 8);
  LOOM_CHECK(f.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, "[npy] ", path,
             ": not a .npy file");
  int major = static_cast<unsigned char>(magic[6]);
  LOOM_CHECK(major >= 1 && major <= 3, "[npy] ", path, ": unsupported version ", major);
  uint32_t hlen = 0;
  if (major == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  LOOM_CHECK(f.good() && hlen < (1u << 20), "[npy] ", path, ": bad header length");
  std::string h(hlen, '\0');
  f.read(h.data(), hlen);
  LOOM_CHECK(f.gcount() == static_cast<std::streamsize>(hlen), "[npy] ", path,
             ": truncated header");
  DType dt = dtype_from_descr(header_field(h, "descr", path), path);
  LOOM_CHECK(header_field(h, "fortran_order", path) == "False", "[npy] ", path,
             ": Fortran order is not supported");
  std::vector<int64_t> dims;
  std::stringstream ss(header_field(h, "shape", path));
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t a = tok.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    try {
      long long v = std::stoll(tok.substr(a));
      LOOM_CHECK(v >= 0 && v < (1ll << 40), "[npy] ", path, ": bad dimension ", v);
      dims.push_back(v);
    } catch (const std::logic_error&) {
      fail("[npy] ", path, ": bad shape entry '", tok, "'");
    }
  }
  Shape shape(dims);
  int64_t numel = 1;
  for (int64_t d : dims) {
    LOOM_CHECK(d == 0 || numel <= (int64_t{1} << 40) / d, "[npy] ", path, ": shape too large");
    numel *= d;
  }
  NDArray a = empty(dt, shape);
  f.read(static_cast<char*>(a.data()), static_cast<std::streamsize>(a.nbytes()));
  LOOM_CHECK(f.gcount() == static_cast<std::streamsize>(a.nbytes()), "[npy] ", path,
             ": truncated data (", f.gcount(), " of ", a.nbytes(), " bytes)");
  return a;
}

void NDArray::save_npy(const std::string& path) const {
  NDArray src = dtype_ == DType::bf16 ? astype(DType::f32) : contiguous();
  const char* descr = npy_descr(src.dtype());
  LOOM_CHECK(descr, "[npy] cannot save dtype ", dtype_name(dtype_), " as .npy");
  std::string shape_s;
  for (int i = 0; i < rank(); ++i) shape_s += std::to_string(shape_[i]) + ",";
  if (rank() > 1) shape_s.pop_back();
  std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" +
                  shape_s + "), }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "[npy] cannot write '", path, "'");
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t hl = static_cast<uint16_t>(h.size());
  char b[2] = {static_cast<char>(hl & 0xff), static_cast<char>(hl >> 8)};
  f.write(b, 2);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(static_cast<const char*>(src.data()), static_cast<std::streamsize>(src.nbytes()));
  LOOM_CHECK(f.good(), "[npy] write to '", path, "' failed");
}

}  // namespace loom
