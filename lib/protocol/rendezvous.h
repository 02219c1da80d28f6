// Where an agent's socket lives and what it is called. Shared by the agent (which creates it) and the CLI (which
// finds it), so the two can never disagree.
//
// The name carries the PID and the process start time ("<pid>-<start_ticks>.sock"): a socket left behind by a
// SIGKILLed process, or one whose PID was reused, is recognisably stale without connecting to it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cppops::protocol {

// Environment variable that overrides the socket directory, for agent and CLI alike.
inline constexpr const char* kSocketDirEnv = "CPPOPS_SOCKET_DIR";

// The directory for `uid`: $CPPOPS_SOCKET_DIR if set, else $XDG_RUNTIME_DIR/cppops, else /tmp/cppops-<uid>.
// Arguments are the raw environment values (nullptr when unset), so callers decide whose environment counts.
std::string socketDir(uid_t uid, const char* socket_dir_env, const char* xdg_runtime_dir_env);

std::string socketFileName(pid_t pid, uint64_t start_ticks);
// The name the agent binds before it listens ("<pid>-<start_ticks>.new"); renamed to socketFileName once listening,
// so a socket under the real name always accepts. Never parsed as a socket name, and no longer than one.
std::string stagingFileName(pid_t pid, uint64_t start_ticks);

struct SocketName {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
};
std::optional<SocketName> parseSocketFileName(std::string_view file_name);
// A staging name, which a process that died between bind and rename leaves behind.
std::optional<SocketName> parseStagingFileName(std::string_view file_name);

// Start time of `pid` in clock ticks since boot, from /proc/<proc_root>/<pid>/stat; nullopt when it is gone.
// Async-signal-safe: no (but allocation-free: one open/read/close into a stack buffer).
std::optional<uint64_t> processStartTicks(pid_t pid, const char* proc_root = "/proc");

// Parses field 22 of a /proc/PID/stat line; the name field may contain spaces and parentheses.
std::optional<uint64_t> startTicksFromStat(std::string_view stat_line);

// sockaddr_un.sun_path holds 108 bytes including the terminator.
inline constexpr size_t kMaxSocketPath = 107;

}  // namespace cppops::protocol
