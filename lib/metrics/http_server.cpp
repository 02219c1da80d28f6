#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace cppops::metrics {

namespace {

// Requests to /metrics are one line and a few headers; anything longer is not a scraper.
constexpr size_t kMaxRequest = 16 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    default: return "Internal Server Error";
  }
}

void sendAll(int fd, const std::string& data, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t sent = 0;
  while (sent < data.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      if (errno == EINTR) continue;
      return;
    }
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

void respond(int fd, const HttpResponse& r, bool with_body, int timeout_ms) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\nContent-Type: " +
                     r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  sendAll(fd, with_body ? head + r.body : head, timeout_ms);
}

// Reads up to the end of the headers; false when the client is too slow, closes early or sends too much.
bool readHead(int fd, std::string& head, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxRequest) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    head.append(buf, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Result<HttpServer> HttpServer::listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  const auto usage = [&](const std::string& why) {
    return makeError(ErrorKind::kUsage, "--listen '" + address + "': " + why + "; write it like 127.0.0.1:9464 or [::1]:9464");
  };
  if (colon == std::string::npos) return usage("no port");
  const std::string host = address.substr(0, colon);
  char* end = nullptr;
  const unsigned long port = std::strtoul(address.c_str() + colon + 1, &end, 10);
  if (colon + 1 == address.size() || *end != '\0' || port > 65535) return usage("the port is not a number up to 65535");
  sockaddr_storage storage{};
  socklen_t size = 0;
  uint16_t* bound_port = nullptr;  // network order, in `storage`
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&storage);
    sa->sin6_family = AF_INET6;
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &sa->sin6_addr) != 1)
      return usage("the host is not an IPv6 address");
    size = sizeof *sa;
    bound_port = &sa->sin6_port;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&storage);
    sa->sin_family = AF_INET;
    if (::inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1)
      return usage("the host is not an IPv4 address, nor an IPv6 address in brackets ([::1])");
    size = sizeof *sa;
    bound_port = &sa->sin_port;
  }
  *bound_port = htons(static_cast<uint16_t>(port));

  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(ErrorKind::kInternal, std::string("cannot create a socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), size) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    return makeError(err == EACCES ? ErrorKind::kPermission : ErrorKind::kUsage,
                     "cannot listen on " + address + ": " + std::strerror(err) +
                         (err == EADDRINUSE ? "; pick another port, or :0 for a free one" : ""));
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &size);
  return HttpServer(fd, host, ntohs(*bound_port));
}

HttpServer::HttpServer(HttpServer&& other) noexcept
    : fd_(other.fd_), host_(std::move(other.host_)), port_(other.port_) {
  other.fd_ = -1;
}

HttpServer::~HttpServer() {
  if (fd_ >= 0) ::close(fd_);
}

void HttpServer::serve(const std::function<HttpResponse(const std::string&, const std::string&)>& handler,
                       int read_timeout_ms) {
  for (;;) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      // EMFILE and friends: wait a little rather than spin, and keep serving.
      if (errno != EINTR) ::poll(nullptr, 0, 100);
      continue;
    }
    std::string head;
    if (!readHead(c, head, read_timeout_ms)) {
      respond(c, {408, "text/plain; charset=utf-8", "request incomplete or too large\n"}, true, read_timeout_ms);
      ::close(c);
      continue;
    }
    // "GET /metrics?x=y HTTP/1.1"
    const size_t sp1 = head.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? std::string::npos : head.find(' ', sp1 + 1);
    const size_t eol = head.find("\r\n");
    if (sp2 == std::string::npos || sp2 > eol || head.compare(sp2 + 1, 5, "HTTP/") != 0) {
      respond(c, {400, "text/plain; charset=utf-8", "not an HTTP request\n"}, true, read_timeout_ms);
      ::close(c);
      continue;
    }
    const std::string method = head.substr(0, sp1);
    std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    HttpResponse r;
    if (method != "GET" && method != "HEAD") {
      r = {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
    } else {
      r = handler(method, path);
    }
    respond(c, r, method != "HEAD", read_timeout_ms);
    ::close(c);
  }
}

}  // namespace cppops::metrics
