/* The smallest program that links the installed agent and starts it. */
#include <cppops/agent.h>
#include <stdio.h>

int main(void) {
  int rc = cppops_agent_start(NULL);
  char path[256] = "";
  cppops_agent_socket_path(path, sizeof path);
  printf("started %d at %s\n", rc, path);
  cppops_agent_stop();
  return rc;
}
