// A program that links the static agent and starts it with one call.
//   linked_target            start, print the socket path, wait
//   linked_target restart    start, stop, start again (the socket must come back)
//   linked_target fork       start, then fork a child that exits normally (the parent's socket must survive)
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "cppops/agent.h"

namespace {

// Returns once the agent's thread sleeps in poll(), or after 5 s. A child forked while another thread holds a
// lock of ASan's allocator (GCC 12's is not fork-safe) deadlocks in LeakSanitizer's check at exit: that is the
// sanitizer's limit, not the agent's (glibc's malloc is fork-safe), so the test forks when the agent is idle.
void waitForIdleAgent() {
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (DIR* tasks = opendir("/proc/self/task")) {
      while (dirent* entry = readdir(tasks)) {
        const std::string dir = std::string("/proc/self/task/") + entry->d_name;
        std::string name;
        long number = -1;
        std::getline(std::ifstream(dir + "/comm"), name);
        if (name != "cppops-agent" || !(std::ifstream(dir + "/syscall") >> number)) continue;
        if (number == SYS_poll || number == SYS_ppoll) {
          closedir(tasks);
          return;
        }
      }
      closedir(tasks);
    }
    usleep(10000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  cppops_agent_options options{};
  options.struct_size = sizeof options;
  int rc = cppops_agent_start(&options);
  if (std::strcmp(mode, "restart") == 0) {
    cppops_agent_stop();
    rc = cppops_agent_start(&options);
  }
  if (std::strcmp(mode, "fork") == 0) {
    waitForIdleAgent();
    pid_t child = fork();
    if (child == 0) std::exit(0);  // runs atexit handlers: they must leave the parent's socket alone
    waitpid(child, nullptr, 0);
  }
  char path[256] = "";
  cppops_agent_socket_path(path, sizeof path);
  std::printf("start=%d version=%s socket=%s\nready\n", rc, cppops_agent_version(), path);
  std::fflush(stdout);
  for (;;) pause();
}
