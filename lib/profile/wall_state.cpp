#include "profile/wall_state.h"

#include "proc/syscalls.h"
#include "proc/task.h"
#include "stack/analyze.h"
#include "stack/model.h"

namespace cppops::profile {

std::string wallState(const std::string& syscall_line, const std::vector<uint64_t>& pcs, Symbolizer* symbolizer) {
  std::vector<SourceFrame> frames;
  proc::SyscallInfo info = proc::parseSyscall(syscall_line);
  if (symbolizer != nullptr && info.kind == proc::SyscallInfo::Kind::kInSyscall &&
      proc::classifySyscall(info.number) == proc::SyscallClass::kFutex) {
    bool return_address = false;  // the first pc is where the thread was
    for (uint64_t pc : pcs) {
      const std::vector<SourceFrame>& expanded = symbolizer->symbolize(pc, return_address);
      frames.insert(frames.end(), expanded.begin(), expanded.end());
      return_address = expanded.empty() || followedByReturnAddress(expanded.back().function);
    }
  }
  return stack::stateName(stack::stateFromSyscall(syscall_line, frames));
}

}  // namespace cppops::profile
