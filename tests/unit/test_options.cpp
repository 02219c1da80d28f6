#include <stdlib.h>

#include <catch2/catch.hpp>

#include "options.h"
#include "proc/process.h"
#include "subprocess.h"

using namespace cppops;

namespace {
struct EnvGuard {
  explicit EnvGuard(const char* name) : name_(name) {}
  ~EnvGuard() { unsetenv(name_); }
  const char* name_;
};
}  // namespace

TEST_CASE("agent options: defaults, overrides, disable words and clamping") {
  EnvGuard a("CPPOPS_AGENT"), b("CPPOPS_MAX_CLIENTS"), c("CPPOPS_REQUEST_TIMEOUT_MS"), d("CPPOPS_SOCKET_DIR");
  auto defaults = agent::optionsFromEnvironment();
  CHECK(defaults.enabled);
  CHECK(defaults.max_clients == 16);
  CHECK(defaults.request_timeout_ms == 5000);

  for (const char* off : {"0", "off", "OFF", "false", "no"}) {
    setenv("CPPOPS_AGENT", off, 1);
    CHECK_FALSE(agent::optionsFromEnvironment().enabled);
  }
  setenv("CPPOPS_AGENT", "1", 1);
  CHECK(agent::optionsFromEnvironment().enabled);

  setenv("CPPOPS_MAX_CLIENTS", "100000", 1);
  CHECK(agent::optionsFromEnvironment().max_clients == 256);
  setenv("CPPOPS_MAX_CLIENTS", "12abc", 1);  // malformed: keep the default, do not become 0
  CHECK(agent::optionsFromEnvironment().max_clients == 16);
  setenv("CPPOPS_REQUEST_TIMEOUT_MS", "1", 1);
  CHECK(agent::optionsFromEnvironment().request_timeout_ms == 100);
  setenv("CPPOPS_SOCKET_DIR", "/somewhere", 1);
  CHECK(agent::optionsFromEnvironment().socket_dir == "/somewhere");
}

TEST_CASE("every agent option is documented in cppops-agent(3)") {
  auto page = proc::readFile(test::sourceDir() + "/man/cppops-agent.3");
  REQUIRE(page);
  size_t count = 0;
  const agent::OptionInfo* table = agent::optionTable(&count);
  REQUIRE(count >= 5);
  for (size_t i = 0; i < count; ++i) {
    INFO("option " << table[i].env);
    CHECK(page->find(table[i].env) != std::string::npos);
  }
}
