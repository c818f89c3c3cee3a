// Writes a line, then traps: a workload that crashes.
#include <stdio.h>
int main(void) {
  printf("about to crash\n");
  fflush(stdout);
  __builtin_trap();
}
