#include "stack/model.h"

#include <iterator>

namespace cppops::stack {
namespace {

struct StateName {
  ThreadState state;
  const char* name;
};

// These names are part of the JSON schema and of the --state filter: never rename one.
constexpr StateName kStateNames[] = {
    {ThreadState::kRunning, "running"},       {ThreadState::kMutex, "mutex"},
    {ThreadState::kRwlockRead, "rwlock_read"}, {ThreadState::kRwlockWrite, "rwlock_write"},
    {ThreadState::kCondition, "condvar"},      {ThreadState::kSemaphore, "semaphore"},
    {ThreadState::kAtomicWait, "atomic_wait"}, {ThreadState::kSleep, "sleep"},
    {ThreadState::kRead, "read"},              {ThreadState::kWrite, "write"},
    {ThreadState::kPoll, "poll"},              {ThreadState::kAccept, "accept"},
    {ThreadState::kConnect, "connect"},        {ThreadState::kWaitChild, "wait_child"},
    {ThreadState::kSignalWait, "signal_wait"}, {ThreadState::kDiskWait, "disk_wait"},
    {ThreadState::kStopped, "stopped"},        {ThreadState::kZombie, "zombie"},
    {ThreadState::kSyscall, "syscall"},        {ThreadState::kUnknown, "unknown"},
};
static_assert(std::size(kStateNames) == static_cast<size_t>(ThreadState::kUnknown) + 1,
              "every ThreadState needs a name");

}  // namespace

const char* stateName(ThreadState state) {
  for (const StateName& entry : kStateNames) {
    if (entry.state == state) return entry.name;
  }
  return "unknown";
}

std::optional<ThreadState> stateFromName(const std::string& name) {
  for (const StateName& entry : kStateNames) {
    if (name == entry.name) return entry.state;
  }
  return std::nullopt;
}

}  // namespace cppops::stack
