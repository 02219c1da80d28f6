#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>

#include "protocol/messages.h"
#include "protocol/protocol.h"
#include "protocol/rendezvous.h"

using namespace cppops;

TEST_CASE("wire round-trips every primitive and stops at the end of the buffer") {
  wire::Writer w;
  w.u8(7);
  w.u16(0xBEEF);
  w.u32(0xDEADBEEF);
  w.u64(0x0123456789ABCDEFull);
  w.i64(-42);
  w.str("héllo");
  auto bytes = w.take();
  wire::Reader r(bytes);
  CHECK(r.u8() == 7);
  CHECK(r.u16() == 0xBEEF);
  CHECK(r.u32() == 0xDEADBEEF);
  CHECK(r.u64() == 0x0123456789ABCDEFull);
  CHECK(r.i64() == -42);
  CHECK(r.str() == "héllo");
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
  CHECK(r.u32() == 0);
  CHECK_FALSE(r.ok());
}

TEST_CASE("a string length beyond the buffer fails without reading past it") {
  wire::Writer w;
  w.u32(1000);  // claims 1000 bytes
  w.u8('x');
  auto bytes = w.take();
  wire::Reader r(bytes);
  CHECK(r.str().empty());
  CHECK_FALSE(r.ok());
}

TEST_CASE("a hostile element count is rejected before anything is allocated") {
  wire::Writer w;
  w.str("agent");
  w.u16(1);
  w.u32(1);
  w.u64(2);
  w.u32(0xFFFFFFFF);  // four billion capabilities
  auto bytes = w.take();
  wire::Reader r(bytes);
  protocol::HelloReply hello;
  CHECK_FALSE(hello.decode(r));
}

TEST_CASE("messages decode what they encode, and ignore fields appended by a newer peer") {
  protocol::StatsReply s;
  s.threads = 12;
  s.utime_ticks = 345;
  s.rss_bytes = 1 << 20;
  s.open_fds = 9;
  s.boottime_ns = 123456789;
  wire::Writer w;
  s.encode(w);
  w.u64(999);  // a field this version does not know
  auto bytes = w.take();
  wire::Reader r(bytes);
  protocol::StatsReply back;
  REQUIRE(back.decode(r));
  CHECK(back.threads == 12);
  CHECK(back.utime_ticks == 345);
  CHECK(back.rss_bytes == (1u << 20));
  CHECK(back.open_fds == 9);
  CHECK(back.boottime_ns == 123456789);
}

TEST_CASE("a stack reply carries names and the count read asleep after the threads, where older agents stop") {
  protocol::StackReply reply;
  reply.threads.resize(2);
  reply.threads[0].tid = 41;
  reply.threads[0].pcs = {0x1000, 0x2000};
  reply.threads[1].tid = 42;
  reply.thread_names = {"worker-1", ""};
  reply.read_asleep = 1;
  wire::Writer w;
  reply.encode(w);
  auto bytes = w.take();
  wire::Reader r(bytes);
  protocol::StackReply back;
  REQUIRE(back.decode(r));
  CHECK(back.threads.size() == 2);
  CHECK(back.threads[0].pcs == std::vector<uint64_t>{0x1000, 0x2000});
  CHECK(back.thread_names == std::vector<std::string>{"worker-1", ""});
  CHECK(back.read_asleep == 1);

  // What an agent that predates the count sends: the same bytes up to the end of the names.
  wire::Reader without_count(bytes.data(), bytes.size() - sizeof(uint32_t));
  protocol::StackReply from_names_only;
  REQUIRE(from_names_only.decode(without_count));
  CHECK(from_names_only.thread_names == std::vector<std::string>{"worker-1", ""});
  CHECK(from_names_only.read_asleep == 0);

  // What an agent without names sends: the same bytes up to the end of the threads.
  protocol::StackReply older = reply;
  older.thread_names.clear();
  wire::Writer ow;
  older.encode(ow);
  auto older_bytes = ow.take();
  wire::Reader older_reader(older_bytes.data(), older_bytes.size() - 2 * sizeof(uint32_t));
  protocol::StackReply from_older;
  REQUIRE(from_older.decode(older_reader));
  CHECK(from_older.threads.size() == 2);
  CHECK(from_older.thread_names.empty());
  CHECK(from_older.read_asleep == 0);
}

TEST_CASE("truncating any message at any byte makes decode fail, never crash") {
  protocol::HelloReply hello{"0.1.0", 1, 1234, 5678, {"hello", "stats", "version"}};
  wire::Writer w;
  hello.encode(w);
  auto bytes = w.take();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    wire::Reader r(bytes.data(), cut);
    protocol::HelloReply back;
    CHECK_FALSE(back.decode(r));
  }
}

TEST_CASE("random bytes never crash a decoder") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> bytes(rng() % 96);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    wire::Reader r1(bytes), r2(bytes), r3(bytes);
    protocol::HelloReply h;
    protocol::VersionReply v;
    protocol::StatsReply s;
    (void)h.decode(r1);
    (void)v.decode(r2);
    (void)s.decode(r3);
  }
  SUCCEED("2000 random payloads decoded without a crash");
}

TEST_CASE("frame headers round-trip") {
  protocol::FrameHeader h;
  h.code = 4;
  h.length = 77;
  uint8_t bytes[protocol::kHeaderSize];
  protocol::encodeHeader(h, bytes);
  CHECK(std::string(reinterpret_cast<char*>(bytes), 4) == "CPOP");
  auto back = protocol::decodeHeader(bytes);
  CHECK(back.magic == protocol::kMagic);
  CHECK(back.version == protocol::kProtocolVersion);
  CHECK(back.code == 4);
  CHECK(back.length == 77);
}

TEST_CASE("socket names carry PID and start time and reject anything else") {
  CHECK(protocol::socketFileName(1234, 98765) == "1234-98765.sock");
  auto n = protocol::parseSocketFileName("1234-98765.sock");
  REQUIRE(n);
  CHECK(n->pid == 1234);
  CHECK(n->start_ticks == 98765);
  for (const char* bad : {"1234.sock", "-5.sock", "12-34", "abc-12.sock", "12-34.sock.bak", "12-3x.sock", "0-1.sock"})
    CHECK_FALSE(protocol::parseSocketFileName(bad));
}

TEST_CASE("the staging name an agent binds first is never taken for a socket, and is no longer than one") {
  CHECK(protocol::stagingFileName(1234, 98765) == "1234-98765.new");
  CHECK_FALSE(protocol::parseSocketFileName(protocol::stagingFileName(1234, 98765)));
  CHECK(protocol::stagingFileName(4194304, UINT64_MAX).size() <= protocol::socketFileName(4194304, UINT64_MAX).size());
  auto staged = protocol::parseStagingFileName("1234-98765.new");
  REQUIRE(staged);
  CHECK(staged->pid == 1234);
  CHECK(staged->start_ticks == 98765);
  CHECK_FALSE(protocol::parseStagingFileName("1234-98765.sock"));
  CHECK_FALSE(protocol::parseStagingFileName("1234.new"));
}

TEST_CASE("socket directory: override, then XDG_RUNTIME_DIR, then /tmp") {
  CHECK(protocol::socketDir(1000, "/x/y", "/run/user/1000") == "/x/y");
  CHECK(protocol::socketDir(1000, nullptr, "/run/user/1000") == "/run/user/1000/cppops");
  CHECK(protocol::socketDir(1000, "", "relative") == "/tmp/cppops-1000");
  CHECK(protocol::socketDir(0, nullptr, nullptr) == "/tmp/cppops-0");
}

TEST_CASE("start time is field 22 of stat even when the name has spaces and parentheses") {
  const char* line = "42 (a) b (c d) S 1 42 42 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 777 1000 10";
  auto t = protocol::startTicksFromStat(line);
  REQUIRE(t);
  CHECK(*t == 777);
  auto self = protocol::processStartTicks(getpid());
  REQUIRE(self);
  CHECK(*self > 0);
  CHECK_FALSE(protocol::processStartTicks(999999999));
}

TEST_CASE("command names and capabilities agree") {
  CHECK(protocol::commandName(protocol::Command::kStats) == "stats");
  CHECK(protocol::commandFromName("version") == protocol::Command::kVersion);
  CHECK_FALSE(protocol::commandFromName("bogus"));
}
