// A program that links the static agent and starts it with one call.
//   linked_target            start, print the socket path, wait
//   linked_target restart    start, stop, start again (the socket must come back)
//   linked_target fork       start, then fork a child that exits normally (the parent's socket must survive)
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cppops/agent.h"

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
