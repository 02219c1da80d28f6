#include "command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>

#include "exit_codes.h"

namespace cppops::cli {

namespace {

const char* kindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage: return "usage";
    case ErrorKind::kNoProcess: return "no_agent";
    case ErrorKind::kPermission: return "permission";
    case ErrorKind::kAgent: return "agent";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace

void addCommonFlags(CLI::App& command, CommonFlags& flags) {
  command.add_flag("--json", flags.json, "Print JSON for scripts (schema in cppops(1))");
  command.add_option("--timeout", flags.timeout_ms, "Milliseconds to wait for the agent (default 2000)")
      ->check(CLI::Range(10, 600000));
}

std::string notAPid(const std::string& text) {
  pid_t pid = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, pid);
  if (!text.empty() && error == std::errc() && stop == end && pid > 0) return "";
  return "'" + text + "' is not a process ID (a positive number); `cppops` lists the processes with an agent";
}

void addPidArgument(CLI::App& command, pid_t& pid) {
  command.add_option("PID", pid, "Process ID (see `cppops ps`)")
      ->required()
      ->check(CLI::Validator([](std::string& text) { return notAPid(text); }, "PID", "process ID"));
}

int reportError(const Error& error, const CommonFlags& flags) {
  if (flags.json)
    printJson({{"error", {{"kind", kindName(error.kind)}, {"message", error.message}}}});
  fmt::print(stderr, "cppops: {}\n", error.message);
  return exitCodeFor(error.kind);
}

std::optional<std::chrono::milliseconds> parseDuration(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double ms = 0;
  if (unit.empty() || unit == "s") ms = value * 1000;
  else if (unit == "ms") ms = value;
  else if (unit == "m") ms = value * 60000;
  else return std::nullopt;
  if (!(ms >= 1) || ms > 24 * 3600 * 1000.0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

void printJson(const nlohmann::json& doc) {
  std::string text = isatty(STDOUT_FILENO) ? doc.dump(2) : doc.dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

void printJsonText(const std::string& compact) {
  if (isatty(STDOUT_FILENO)) return printJson(nlohmann::json::parse(compact));
  std::fwrite(compact.data(), 1, compact.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace cppops::cli
