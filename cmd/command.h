// What every command shares: the flags defined once, error reporting, and the registration functions that
// main.cpp wires together (one per file in cmd/).
#pragma once

#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"

namespace cppops::cli {

struct CommonFlags {
  bool json = false;
  int timeout_ms = 2000;
  std::chrono::milliseconds timeout() const { return std::chrono::milliseconds(timeout_ms); }
};

// Adds --json and --timeout to a command, bound to the same CommonFlags.
void addCommonFlags(CLI::App& command, CommonFlags& flags);

// Adds the required PID positional.
void addPidArgument(CLI::App& command, pid_t& pid);

// Why `text` is not a process ID (a positive decimal number that fits pid_t), or "" when it is one.
std::string notAPid(const std::string& text);

// Prints an error (human line on stderr; with --json also {"error": ...} on stdout) and returns its exit code.
int reportError(const Error& error, const CommonFlags& flags);

// A duration as people write it: "10s", "500ms", "2m", or a plain number of seconds. nullopt when malformed or
// not positive.
std::optional<std::chrono::milliseconds> parseDuration(const std::string& text);

// Prints a JSON document on stdout, indented for people, one line per document for pipes.
void printJson(const nlohmann::json& doc);
// The same for JSON already rendered as compact text (large documents are never built as a DOM).
void printJsonText(const std::string& compact);

// Each command registers itself and sets `exit_code` when it runs.
using Registrar = void (*)(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerPs(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerTree(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerVersion(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerStats(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerStack(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerProfile(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerMetrics(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerWatch(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerExporter(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerTop(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerHeap(CLI::App& app, CommonFlags& flags, int& exit_code);
void registerGc(CLI::App& app, CommonFlags& flags, int& exit_code);

// The two commands that also run without a subcommand: `cppops` lists, `cppops PID` summarises.
int runPs(const CommonFlags& flags);
int runSummary(pid_t pid, const CommonFlags& flags);

}  // namespace cppops::cli
