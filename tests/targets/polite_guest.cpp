// A host with habits the agent must not disturb: C++ exceptions thrown across several frames and caught, and
// its own handlers for SIGTERM and SIGUSR1. Its output must be byte-for-byte the same with the agent preloaded.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

volatile sig_atomic_t g_usr1 = 0;
volatile sig_atomic_t g_term = 0;

void onUsr1(int) { g_usr1 = g_usr1 + 1; }
void onTerm(int) { g_term = 1; }

[[noreturn]] __attribute__((noinline)) void thrower(int depth) {
  if (depth == 0) throw std::runtime_error("deep failure");
  thrower(depth - 1);
}

__attribute__((noinline)) std::string catcher(int depth) {
  try {
    thrower(depth);
  } catch (const std::runtime_error& e) {
    return std::string("caught '") + e.what() + "' from depth " + std::to_string(depth);
  }
  return "not caught";
}

}  // namespace

int main() {
  struct sigaction sa{};
  sa.sa_handler = onUsr1;
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = onTerm;
  sigaction(SIGTERM, &sa, nullptr);

  for (int depth : {0, 3, 17}) std::printf("%s\n", catcher(depth).c_str());
  try {
    try {
      thrower(5);
    } catch (...) {
      std::printf("rethrowing\n");
      throw;
    }
  } catch (const std::exception& e) {
    std::printf("outer caught '%s'\n", e.what());
  }

  raise(SIGUSR1);
  raise(SIGUSR1);
  std::printf("usr1 handled %d times\n", static_cast<int>(g_usr1));
  std::printf("waiting for SIGTERM\n");
  std::fflush(stdout);
  while (!g_term) pause();
  std::printf("SIGTERM handled, usr1 total %d\n", static_cast<int>(g_usr1));
  return 0;
}
