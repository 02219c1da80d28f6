// A program whose binary the test deletes after it starts. Linked with -rdynamic, so its functions are in the
// dynamic symbol table and the agent can still name them from the loader's tables when the CLI cannot read the
// file at all.
#include <chrono>
#include <cstdio>
#include <thread>

extern "C" __attribute__((noinline)) void parkedInDeletedBinary() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

int main() {
  std::thread parked(parkedInDeletedBinary);
  std::printf("ready\n");
  std::fflush(stdout);
  parked.join();
}
