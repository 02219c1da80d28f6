// A minimal HTTP/1.1 GET over loopback for tests that talk to the exporter and to a real Prometheus.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace cppops::test {

struct HttpReply {
  int status = 0;
  std::string headers;
  std::string body;
};

// nullopt when nothing listens or no complete reply came within `limit`. `host`: IPv4 loopback, or IPv6 "::1".
std::optional<HttpReply> httpGet(uint16_t port, const std::string& path_and_query,
                                 std::chrono::milliseconds limit = std::chrono::seconds(10),
                                 const std::string& host = "127.0.0.1");

// A TCP port on 127.0.0.1 that was free a moment ago (bound and released).
uint16_t freeLoopbackPort();

// Percent-encodes everything but unreserved characters, for query strings.
std::string urlEncode(const std::string& text);

}  // namespace cppops::test
