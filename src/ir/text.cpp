// IR text: a readable, parseable form of a graph, used by golden pass tests and `loom inspect`.
//
//   var @cache : f32[2] = f32[2]{0, 0}
//   %0 = placeholder {name="x", dtype="f32", shape=[2,-1]} : f32[2,?]
//   %1 = constant {value=f32[]{2}} : f32[]
//   %2 = mul(%0, %1) : f32[2,?]
//   %3 = split(%2) {axis=1, sizes=[1,1]} : f32[2,1], f32[2,1]
//   assign(%3.1) {variable="cache", ...}
//   return %2, %3.0
#include <cctype>
#include <cstring>
#include <map>
#include <sstream>

#include "core/element.h"
#include "ir/op_registry.h"

namespace loom::ir {
namespace {

std::string value_name(const GraphData& g, Value v) {
  std::string s = "%" + std::to_string(v.node);
  if (g.node(v).outputs.size() > 1) s += "." + std::to_string(v.index);
  return s;
}

// Exact text of an array: dtype[shape]{v0, v1, ...} with round-trip precision.
std::string array_text(const NDArray& a) {
  std::ostringstream os;
  os.precision(17);
  os << dtype_name(a.dtype()) << a.shape().to_string() << "{";
  std::vector<double> v = a.to_doubles();
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "}";
  return os.str();
}

std::string attrs_text(const Attrs& attrs, bool& elided) {
  std::string s;
  for (const auto& [name, v] : attrs.fields()) {
    s += s.empty() ? " {" : ", ";
    if (const auto* a = std::get_if<NDArray>(&v)) {
      if (a->numel() > 256) {
        elided = true;
        s += name + "=" + a->type().to_string() + "<" + std::to_string(a->nbytes()) + " bytes>";
      } else {
        s += name + "=" + array_text(*a);
      }
    } else {
      s += name + "=" + attr_value_to_string(v);
    }
  }
  return s.empty() ? s : s + "}";
}

}  // namespace

std::string print_graph(const GraphData& g, const std::vector<Value>& outputs) {
  const auto& reg = OpRegistry::get();
  std::ostringstream os;
  bool elided = false;
  for (const auto& v : g.variables) {
    os << "var @" << v.name << " : " << v.type().to_string() << " = ";
    if (v.initial.numel() > 256)
      os << v.type().to_string() << "<" << v.initial.nbytes() << " bytes>\n";
    else
      os << array_text(v.initial) << "\n";
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.outputs.empty()) os << "%" << i << " = ";
    os << reg.info(n.op).name;
    if (!n.inputs.empty()) {
      os << "(";
      for (size_t k = 0; k < n.inputs.size(); ++k)
        os << (k ? ", " : "") << value_name(g, n.inputs[k]);
      os << ")";
    }
    os << attrs_text(*n.attrs, elided);
    if (!n.outputs.empty()) {
      os << " :";
      for (size_t k = 0; k < n.outputs.size(); ++k)
        os << (k ? ", " : " ") << n.outputs[k].to_string();
    }
    os << "\n";
  }
  os << "return";
  for (size_t k = 0; k < outputs.size(); ++k) os << (k ? ", " : " ") << value_name(g, outputs[k]);
  os << "\n";
  return os.str();
}

namespace {

class Parser {
 public:
  Parser(const std::string& line, int line_no) : s_(line), line_(line_no) {}

  [[noreturn]] void error(const std::string& what) const {
    fail("[ir parse] line ", line_, ", column ", pos_ + 1, ": ", what, "\n  ", s_);
  }
  void ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(char c) {
    ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) error(std::string("expected '") + c + "'");
  }
  bool at_end() {
    ws();
    return pos_ >= s_.size();
  }
  bool starts_with(const char* w) {
    ws();
    return s_.compare(pos_, std::strlen(w), w) == 0;
  }

  std::string ident() {
    ws();
    size_t b = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '_' || s_[pos_] == '.'))
      ++pos_;
    if (b == pos_) error("expected a name");
    return s_.substr(b, pos_ - b);
  }
  double number() {
    ws();
    const char* b = s_.c_str() + pos_;
    char* e = nullptr;
    double v = std::strtod(b, &e);
    if (e == b) error("expected a number");
    pos_ += static_cast<size_t>(e - b);
    return v;
  }
  bool number_is_int() {
    ws();
    size_t p = pos_;
    if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) ++p;
    size_t b = p;
    while (p < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p]))) ++p;
    return p > b && (p >= s_.size() || std::strchr(".eEn", s_[p]) == nullptr);
  }
  int64_t integer() {
    ws();
    const char* b = s_.c_str() + pos_;
    char* e = nullptr;
    long long v = std::strtoll(b, &e, 10);
    if (e == b) error("expected an integer");
    pos_ += static_cast<size_t>(e - b);
    return v;
  }

  Value value(const std::map<std::string, Value>& names) {
    ws();
    size_t b = pos_;
    expect('%');
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.'))
      ++pos_;
    std::string name = s_.substr(b, pos_ - b);
    auto it = names.find(name);
    if (it == names.end()) error("unknown value " + name);
    return it->second;
  }

  // dtype[dims]
  TensorType type() {
    std::string dt = ident();
    TensorType t{dtype_from_name(dt), {}};
    expect('[');
    std::vector<int64_t> dims;
    while (!eat(']')) {
      if (!dims.empty()) expect(',');
      if (eat('?'))
        dims.push_back(kDynamic);
      else
        dims.push_back(integer());
    }
    t.shape = Shape(dims);
    return t;
  }

  NDArray array() {
    TensorType t = type();
    ws();
    if (eat('<')) error("constant data was elided when printing; it cannot be parsed back");
    expect('{');
    std::vector<double> v;
    while (!eat('}')) {
      if (!v.empty()) expect(',');
      ws();
      if (starts_with("nan")) {
        pos_ += 3;
        v.push_back(NAN);
      } else if (starts_with("inf")) {
        pos_ += 3;
        v.push_back(INFINITY);
      } else if (starts_with("-inf")) {
        pos_ += 4;
        v.push_back(-INFINITY);
      } else
        v.push_back(number());
    }
    if (!t.shape.is_static() || static_cast<int64_t>(v.size()) != t.shape.numel())
      error("array has the wrong number of values");
    return NDArray::from_doubles(v, t.shape, t.dtype);
  }

  AttrValue attr_value() {
    ws();
    if (pos_ >= s_.size()) error("expected a value");
    char c = s_[pos_];
    if (c == '"') {
      ++pos_;
      std::string out;
      while (pos_ < s_.size() && s_[pos_] != '"') {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) {
          ++pos_;
          out += s_[pos_] == 'n' ? '\n' : s_[pos_];  // "\n": a newline (multi-line programs)
          ++pos_;
          continue;
        }
        out += s_[pos_++];
      }
      expect('"');
      return out;
    }
    if (c == '[') {
      ++pos_;
      std::vector<double> d;
      bool all_int = true;
      std::vector<int64_t> iv;
      while (!eat(']')) {
        if (!d.empty()) expect(',');
        bool is_int = number_is_int();
        size_t save = pos_;
        if (is_int) {
          iv.push_back(integer());
          pos_ = save;
        }
        all_int = all_int && is_int;
        d.push_back(number());
      }
      if (all_int) return iv;
      return d;
    }
    if (starts_with("true")) {
      pos_ += 4;
      return true;
    }
    if (starts_with("false")) {
      pos_ += 5;
      return false;
    }
    if (std::isalpha(static_cast<unsigned char>(c))) return array();
    if (number_is_int()) return integer();
    return number();
  }

  AttrFields attrs() {
    AttrFields f;
    if (!eat('{')) return f;
    while (!eat('}')) {
      if (!f.empty()) expect(',');
      std::string name = ident();
      expect('=');
      f.emplace_back(name, attr_value());
    }
    return f;
  }

  size_t pos_ = 0;

 private:
  std::string s_;
  int line_;
};

}  // namespace

GraphData parse_graph(const std::string& text, std::vector<Value>* outputs) {
  const auto& reg = OpRegistry::get();
  GraphData g;
  std::map<std::string, Value> names;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  bool returned = false;
  while (std::getline(in, line)) {
    ++line_no;
    Parser p(line, line_no);
    if (p.at_end() || p.starts_with("//")) continue;
    if (returned) p.error("text after 'return'");
    if (p.starts_with("var")) {
      p.ident();
      p.expect('@');
      std::string name = p.ident();
      p.expect(':');
      TensorType t = p.type();
      p.expect('=');
      NDArray init = p.array();
      if (init.type() != t) p.error("variable type and value differ");
      if (g.find_variable(name) >= 0) p.error("variable '" + name + "' defined twice");
      g.variables.push_back({name, init});
      continue;
    }
    if (p.starts_with("return")) {
      p.ident();
      std::vector<Value> outs;
      while (!p.at_end()) {
        if (!outs.empty()) p.expect(',');
        outs.push_back(p.value(names));
      }
      if (outputs) *outputs = outs;
      returned = true;
      continue;
    }
    std::string result;
    if (p.starts_with("%")) {
      p.expect('%');
      result = "%" + std::to_string(p.integer());
      p.expect('=');
    }
    p.ws();
    size_t op_at = p.pos_;
    std::string op_name = p.ident();
    if (!reg.contains(op_name)) {
      p.pos_ = op_at;
      p.error("unknown op '" + op_name + "'");
    }
    OpId id = reg.find(op_name);
    std::vector<Value> inputs;
    if (p.eat('(')) {
      while (!p.eat(')')) {
        if (!inputs.empty()) p.expect(',');
        inputs.push_back(p.value(names));
      }
    }
    auto attrs = reg.info(id).default_attrs()->clone();
    try {
      attrs->set_fields(p.attrs());
    } catch (const Error& e) {
      p.error(std::string(op_name) + ": " + e.what());
    }
    std::vector<TensorType> declared;
    if (p.eat(':')) {
      while (!p.at_end()) {
        if (!declared.empty()) p.expect(',');
        declared.push_back(p.type());
      }
    }
    std::string node_name = id == op::placeholder ? attrs_as<PlaceholderAttrs>(*attrs).name : "";
    std::vector<Value> outs;
    try {
      outs = add_node(g, id, inputs, std::move(attrs), node_name);
    } catch (const Error& e) {
      p.pos_ = 0;
      p.error(e.what());
    }
    if (!declared.empty() && declared != g.nodes.back().outputs) {
      std::string got;
      for (const auto& t : g.nodes.back().outputs) got += t.to_string() + " ";
      p.error("declared types differ from inferred: " + got);
    }
    if (!result.empty()) {
      if (names.count(result)) p.error("value " + result + " defined twice");
      if (outs.size() == 1) names[result] = outs[0];
      for (size_t k = 0; k < outs.size() && outs.size() > 1; ++k)
        names[result + "." + std::to_string(k)] = outs[k];
    }
  }
  return g;
}

}  // namespace loom::ir
