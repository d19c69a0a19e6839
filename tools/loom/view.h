// view.h — `loom view`: a local web page that shows a `.loom` package as authored and as
// compiled for a device (issue 11). The Viewer answers requests (pure: path + query -> JSON or an
// embedded static file), the Server puts it on a localhost port with cpp-httplib, so the tests
// can call either.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "loom/device.h"

namespace loom::view {

struct Response {
  int status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
};

using Query = std::map<std::string, std::string>;

class Viewer {
 public:
  // Never throws for a bad package: the error is kept and shown by the page (/api/summary).
  // profile_path: a `loom run --profile-json` file to colour the graph with.
  explicit Viewer(std::string package_path, std::string diff_path = "",
                  std::string default_view = "asis", std::string profile_path = "");
  ~Viewer();

  // GET `path` ("/", "/viewer.js", "/api/graph", ...) with its query parameters.
  Response handle(const std::string& path, const Query& query);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Serves a Viewer on 127.0.0.1. start() binds (port 0: an ephemeral port) and returns the port,
// serving on a background thread until stop() or destruction.
class Server {
 public:
  explicit Server(Viewer& viewer);
  ~Server();
  int start(int port);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `loom view MODEL.loom [--port N] [--device D] [--diff OTHER.loom] [--profile RUN.json]`: blocks
// until interrupted.
int cmd_view(int argc, char** argv);

}  // namespace loom::view
