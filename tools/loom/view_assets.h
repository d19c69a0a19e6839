// view_assets.h — the viewer's static files (viewer/*.html|css|js), embedded in the binary at
// build time by viewer/embed.cmake so that `loom view` needs nothing installed beside it.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace loom::view {

struct Asset {
  const char* name;          // "index.html"
  const char* content_type;  // "text/html; charset=utf-8"
  const char* data;
  size_t size;
};

const std::vector<Asset>& assets();

}  // namespace loom::view
