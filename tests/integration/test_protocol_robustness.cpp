// Hostile and careless clients: the target keeps running and keeps serving everyone else.
#include <catch2/catch.hpp>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "client/client.h"
#include "protocol/messages.h"
#include "raw_client.h"
#include "subprocess.h"

using namespace cppops;
using namespace cppops::test;

namespace {

using Env = std::map<std::string, std::string>;

struct Fixture {
  Fixture() : Fixture(Env{}) {}
  explicit Fixture(Env env)
      : target({"plain_target", {}, true, std::move(env), {}}, dir.path()), socket(target.waitForSocket()) {
    REQUIRE_FALSE(socket.empty());
  }
  // The agent still answers a proper handshake, quickly.
  void requireHealthy() {
    REQUIRE(target.alive());
    RawClient c(socket);
    REQUIRE(c.connected());
    REQUIRE(c.sendFrame(static_cast<uint16_t>(protocol::Command::kHello), {}));
    auto reply = c.receive(1000ms);
    REQUIRE(reply);
    CHECK(reply->status == protocol::Status::kOk);
  }
  TempDir dir;
  TargetProcess target;
  std::string socket;
};

}  // namespace

TEST_CASE("bad magic gets a bad-request reply and the connection is closed") {
  Fixture f;
  RawClient c(f.socket);
  const char junk[] = "GET / HTTP/1.1\r\n\r\n";
  REQUIRE(c.send(junk, sizeof junk - 1));
  auto reply = c.receive();
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kBadRequest);
  CHECK(reply->message.find("bad magic") != std::string::npos);
  CHECK(c.closedByPeer());
  f.requireHealthy();
}

TEST_CASE("an oversized length is refused before anything is buffered") {
  Fixture f;
  RawClient c(f.socket);
  protocol::FrameHeader h;
  h.code = static_cast<uint16_t>(protocol::Command::kStats);
  h.length = 0xFFFFFFF0u;
  uint8_t bytes[protocol::kHeaderSize];
  protocol::encodeHeader(h, bytes);
  REQUIRE(c.send(bytes, sizeof bytes));
  auto reply = c.receive();
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kTooLarge);
  CHECK(c.closedByPeer());
  f.requireHealthy();
}

TEST_CASE("another protocol version is told which one the agent speaks") {
  Fixture f;
  RawClient c(f.socket);
  REQUIRE(c.sendFrame(static_cast<uint16_t>(protocol::Command::kHello), {}, 99));
  auto reply = c.receive();
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kVersionMismatch);
  CHECK(reply->message.find("version 1") != std::string::npos);
  f.requireHealthy();
}

TEST_CASE("an unknown command gets an error reply and the connection stays usable") {
  Fixture f;
  RawClient c(f.socket);
  REQUIRE(c.sendFrame(999, {1, 2, 3}));
  auto reply = c.receive();
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kUnknownCommand);
  REQUIRE(c.sendFrame(static_cast<uint16_t>(protocol::Command::kStats), {}));
  auto stats = c.receive();
  REQUIRE(stats);
  CHECK(stats->status == protocol::Status::kOk);
}

TEST_CASE("a truncated frame followed by a hang-up costs nothing") {
  Fixture f;
  {
    RawClient c(f.socket);
    protocol::FrameHeader h;
    h.code = static_cast<uint16_t>(protocol::Command::kStats);
    h.length = 100;
    uint8_t bytes[protocol::kHeaderSize];
    protocol::encodeHeader(h, bytes);
    REQUIRE(c.send(bytes, sizeof bytes));
    REQUIRE(c.send("0123456789", 10));
  }
  f.requireHealthy();
}

TEST_CASE("silent and half-sent clients delay no one, and are timed out") {
  Fixture f(Env{{"CPPOPS_REQUEST_TIMEOUT_MS", "400"}});
  RawClient silent(f.socket);
  RawClient half(f.socket);
  REQUIRE(half.send("CPO", 3));
  // Served while both are holding their connections open.
  f.requireHealthy();
  f.requireHealthy();
  auto reply = half.receive(5000ms);
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kTimeout);
  CHECK(silent.closedByPeer(5000ms));
}

TEST_CASE("random bytes from many clients never crash or wedge the target") {
  Fixture f;
  std::mt19937 rng(2026);
  for (int i = 0; i < 300; ++i) {
    RawClient c(f.socket);
    REQUIRE(c.connected());
    std::vector<uint8_t> bytes(1 + rng() % 64);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // Every third client speaks a valid header with a random command and random payload.
    if (i % 3 == 0) {
      protocol::FrameHeader h;
      h.code = static_cast<uint16_t>(rng() % 8);
      h.length = static_cast<uint32_t>(bytes.size());
      uint8_t header[protocol::kHeaderSize];
      protocol::encodeHeader(h, header);
      c.send(header, sizeof header);
    }
    c.send(bytes.data(), bytes.size());
  }
  f.requireHealthy();
}

TEST_CASE("16 clients at once are all served") {
  Fixture f;
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i)
    clients.emplace_back([&] {
      for (int j = 0; j < 20; ++j) {
        auto stats = client::request<protocol::StatsReply>(f.target.pid(), protocol::Command::kStats, 5000ms);
        (stats && stats->threads == 2 ? ok : failed)++;
        std::lock_guard<std::mutex> lock(mu);
        if (!stats && first_error.empty()) first_error = stats.error().message;
      }
    });
  for (auto& t : clients) t.join();
  INFO(first_error);
  CHECK(failed == 0);
  CHECK(ok == 16 * 20);
}

TEST_CASE("clients beyond CPPOPS_MAX_CLIENTS get a busy reply that says what to do") {
  Fixture f(Env{{"CPPOPS_MAX_CLIENTS", "2"}});
  RawClient a(f.socket), b(f.socket);
  REQUIRE(a.sendFrame(static_cast<uint16_t>(protocol::Command::kHello), {}));
  REQUIRE(b.sendFrame(static_cast<uint16_t>(protocol::Command::kHello), {}));
  REQUIRE(a.receive());
  REQUIRE(b.receive());
  RawClient third(f.socket);
  auto reply = third.receive();
  REQUIRE(reply);
  CHECK(reply->status == protocol::Status::kBusy);
  CHECK(reply->message.find("CPPOPS_MAX_CLIENTS") != std::string::npos);
}
