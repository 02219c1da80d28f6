// The exit codes of `cppops`, documented in cppops(1) under EXIT STATUS. Scripts depend on these numbers: never
// renumber, only add.
#pragma once

#include "core/result.h"

namespace cppops::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,    // a bug or a broken environment
  kExitUsage = 2,       // bad command line
  kExitNoAgent = 3,     // no such process, or it has no agent
  kExitPermission = 4,  // permission denied (another user's process, ptrace restrictions)
  kExitAgentError = 5,  // the agent answered with an error
  kExitTimeout = 6,     // no answer in time
  kExitDeadlock = 7,    // `stack` found a deadlock (the dump itself succeeded)
};

inline int exitCodeFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage: return kExitUsage;
    case ErrorKind::kNoProcess: return kExitNoAgent;
    case ErrorKind::kPermission: return kExitPermission;
    case ErrorKind::kAgent: return kExitAgentError;
    case ErrorKind::kTimeout: return kExitTimeout;
    case ErrorKind::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace cppops::cli
