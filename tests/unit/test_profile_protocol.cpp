// The PROFILE messages on the wire, and the state a wall-clock sample gets from its kernel facts.
#include <sys/syscall.h>

#include <catch2/catch.hpp>

#include "protocol/messages.h"
#include "protocol/protocol.h"
#include "stack/analyze.h"

using namespace cppops;

namespace {

template <typename Message>
Message roundTrip(const Message& in, std::vector<uint8_t>* bytes_out = nullptr) {
  wire::Writer w;
  in.encode(w);
  std::vector<uint8_t> bytes = w.take();
  if (bytes_out != nullptr) *bytes_out = bytes;
  wire::Reader r(bytes);
  Message out;
  REQUIRE(out.decode(r));
  CHECK(r.remaining() == 0);
  return out;
}

SourceFrame frame(const std::string& function) {
  SourceFrame f;
  f.function = function;
  return f;
}

}  // namespace

TEST_CASE("PROFILE is command 6, named profile") {
  CHECK(static_cast<int>(protocol::Command::kProfile) == 6);
  CHECK(protocol::commandName(protocol::Command::kProfile) == "profile");
  CHECK(protocol::commandFromName("profile") == protocol::Command::kProfile);
}

TEST_CASE("profile request: 9 bytes on the wire, and an empty payload means the defaults") {
  protocol::ProfileRequest request;
  request.duration_ms = 30000;
  request.rate_hz = 997;
  request.mode = protocol::kProfileWall;
  std::vector<uint8_t> bytes;
  protocol::ProfileRequest back = roundTrip(request, &bytes);
  CHECK(bytes.size() == 9);
  CHECK(back.duration_ms == 30000);
  CHECK(back.rate_hz == 997);
  CHECK(back.mode == protocol::kProfileWall);

  wire::Reader empty(nullptr, 0);
  protocol::ProfileRequest defaults;
  REQUIRE(defaults.decode(empty));
  CHECK(defaults.duration_ms == 10000);
  CHECK(defaults.rate_hz == 100);
  CHECK(defaults.mode == protocol::kProfileCpu);

  const uint8_t truncated[] = {1, 0, 0, 0, 2};
  wire::Reader short_reader(truncated, sizeof truncated);
  protocol::ProfileRequest bad;
  CHECK_FALSE(bad.decode(short_reader));
}

TEST_CASE("profile reply: threads with labels, samples with kernel facts and pcs, notes") {
  protocol::ProfileReply reply;
  reply.duration_ns = 10'000'000'000ull;
  reply.period_ns = 10'000'000ull;
  reply.dropped = 3;
  protocol::ProfileThread worker;
  worker.tid = 41;
  worker.name = "worker";
  worker.labels.push_back({"request", "abc"});
  reply.threads.push_back(worker);
  reply.threads.push_back({42, "io", {}});
  protocol::ProfileSample hot;
  hot.tid = 41;
  hot.weight = 750;
  hot.pcs = {0x401000, 0x401234, 0x7f0000001000};
  protocol::ProfileSample waiting;
  waiting.tid = 42;
  waiting.weight = 5;
  waiting.syscall_line = "0 0x3 0x7ffc 0x40 0x0 0x0 0x0 0x7ffc0000f000 0x7f1";
  reply.samples = {hot, waiting};
  reply.notes = {"a note"};

  protocol::ProfileReply back = roundTrip(reply);
  CHECK(back.duration_ns == reply.duration_ns);
  CHECK(back.period_ns == reply.period_ns);
  CHECK(back.dropped == 3);
  REQUIRE(back.threads.size() == 2);
  CHECK(back.threads[0].name == "worker");
  REQUIRE(back.threads[0].labels.size() == 1);
  CHECK(back.threads[0].labels[0].key == "request");
  CHECK(back.threads[0].labels[0].value == "abc");
  CHECK(back.threads[1].labels.empty());
  REQUIRE(back.samples.size() == 2);
  CHECK(back.samples[0].weight == 750);
  CHECK(back.samples[0].pcs == hot.pcs);
  CHECK(back.samples[0].syscall_line.empty());
  CHECK(back.samples[1].syscall_line == waiting.syscall_line);
  CHECK(back.notes == reply.notes);
}

TEST_CASE("profile reply: a hostile sample count fails before allocating, a truncated reply fails") {
  wire::Writer w;
  w.u64(1);
  w.u64(2);
  w.u64(0);
  w.u32(0);           // no threads
  w.u32(0xFFFFFFFF);  // four billion samples in a few bytes
  std::vector<uint8_t> bytes = w.take();
  wire::Reader r(bytes);
  protocol::ProfileReply reply;
  CHECK_FALSE(reply.decode(r));

  protocol::ProfileReply full;
  full.samples.push_back({7, 1, "", {1, 2, 3}});
  wire::Writer w2;
  full.encode(w2);
  std::vector<uint8_t> whole = w2.take();
  wire::Reader cut(whole.data(), whole.size() - 9);
  protocol::ProfileReply partial;
  CHECK_FALSE(partial.decode(cut));
}

TEST_CASE("a wall-clock sample's state comes from its syscall line and, for futex waits, its frames") {
  using stack::ThreadState;
  CHECK(stack::stateFromSyscall("running", {}) == ThreadState::kRunning);
  const std::string args = " 0x3 0x7ffc0000e000 0x40 0x0 0x0 0x0 0x7ffc0000f000 0x7f1";
  CHECK(stack::stateFromSyscall(std::to_string(SYS_read) + args, {}) == ThreadState::kRead);
  CHECK(stack::stateFromSyscall(std::to_string(SYS_clock_nanosleep) + args, {}) == ThreadState::kSleep);
  const std::string futex_wait = std::to_string(SYS_futex) + " 0x55550000 0x80 0x2 0x0 0x0 0x0 0x7ffc0000f000 0x7f1";
  CHECK(stack::stateFromSyscall(futex_wait, {}) == ThreadState::kAtomicWait);
  CHECK(stack::stateFromSyscall(futex_wait, {frame("__lll_lock_wait"), frame("std::mutex::lock()")}) ==
        ThreadState::kMutex);
  CHECK(stack::stateFromSyscall(futex_wait, {frame("__futex_abstimed_wait_common64"),
                                             frame("std::condition_variable::wait(std::unique_lock<std::mutex>&)")}) ==
        ThreadState::kCondition);
  CHECK(stack::stateFromSyscall("-1 0x7ffc0000f000 0x7f1", {}) == ThreadState::kUnknown);
  CHECK(stack::stateFromSyscall("", {}) == ThreadState::kUnknown);
}
