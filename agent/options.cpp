#include "options.h"

#include <cstdlib>
#include <cstring>

namespace cppops::agent {

namespace {

void parse(const char* text, bool& out) {
  out = !(std::strcmp(text, "0") == 0 || strcasecmp(text, "off") == 0 || strcasecmp(text, "false") == 0 ||
          strcasecmp(text, "no") == 0);
}

void parse(const char* text, long& out) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end != text && *end == '\0') out = v;  // a malformed number keeps the default rather than becoming 0
}

void parse(const char* text, std::string& out) { out = text; }

constexpr OptionInfo kTable[] = {
#define CPPOPS_OPTION(member, env, kind, def, help) {env, help},
#include "options.def"
#undef CPPOPS_OPTION
};

long clamp(long v, long lo, long hi) { return v < lo ? lo : (v > hi ? hi : v); }

}  // namespace

Options optionsFromEnvironment(Options o) {
#define CPPOPS_OPTION(member, env, kind, def, help) \
  if (const char* v = std::getenv(env); v != nullptr && v[0] != '\0') parse(v, o.member);
#include "options.def"
#undef CPPOPS_OPTION
  o.max_clients = clamp(o.max_clients, 1, 256);
  o.request_timeout_ms = clamp(o.request_timeout_ms, 100, 600000);
  o.heap_profile = clamp(o.heap_profile, 0, 1073741824);
  return o;
}

const OptionInfo* optionTable(size_t* count) {
  *count = sizeof kTable / sizeof kTable[0];
  return kTable;
}

}  // namespace cppops::agent
