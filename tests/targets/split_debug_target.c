/* A C program that knows nothing of cppops and waits inside a library with separate compressed debug info. */
#include <stdio.h>

void split_debug_wait(void);

int main(void) {
  printf("ready\n");
  fflush(stdout);
  split_debug_wait();
  return 0;
}
