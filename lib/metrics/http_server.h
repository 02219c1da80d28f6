// A small blocking HTTP/1.1 server for the exporter: one connection at a time, each bounded in size and time,
// "Connection: close" after every response. Enough for Prometheus and curl; no keep-alive, no TLS, no chunking.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/result.h"

namespace cppops::metrics {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Binds host:port: a numeric IPv4 address ("127.0.0.1:9464") or a bracketed IPv6 one ("[::1]:9464"); port 0
  // picks a free one. host() is the host as written, brackets included, ready for a URL.
  static Result<HttpServer> listen(const std::string& address);
  HttpServer(HttpServer&& other) noexcept;
  HttpServer& operator=(HttpServer&&) = delete;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  uint16_t port() const { return port_; }
  std::string host() const { return host_; }

  // Serves requests forever: `handler` gets the method and the path (without the query) of each request that
  // arrives whole within `read_timeout_ms`. A slow or malformed client gets a 408 or 400 and is closed.
  [[noreturn]] void serve(const std::function<HttpResponse(const std::string& method, const std::string& path)>& handler,
                          int read_timeout_ms);

 private:
  HttpServer(int fd, std::string host, uint16_t port) : fd_(fd), host_(std::move(host)), port_(port) {}
  int fd_ = -1;
  std::string host_;
  uint16_t port_ = 0;
};

}  // namespace cppops::metrics
