/* A C program that knows nothing of cppops: it only gets an agent through LD_PRELOAD. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
