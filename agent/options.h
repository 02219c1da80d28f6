// Agent settings, declared once in options.def.
#pragma once

#include <string>

namespace cppops::agent {

struct Options {
#define CPPOPS_OPTION(member, env, kind, def, help) Options##kind member = def;
  using OptionsBool = bool;
  using OptionsInt = long;
  using OptionsString = std::string;
#include "options.def"
#undef CPPOPS_OPTION
};

struct OptionInfo {
  const char* env;
  const char* help;
};

// Defaults overridden by the process environment. Async-signal-safe: no.
Options optionsFromEnvironment(Options defaults = Options{});

// Every option, in declaration order, for documentation checks.
const OptionInfo* optionTable(size_t* count);

}  // namespace cppops::agent
