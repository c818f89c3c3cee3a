// Burns CPU forever: a workload that hits the CPU-time limit.
#include <stdio.h>
int main(void) {
  printf("spinning\n");
  fflush(stdout);
  volatile unsigned long x = 0;
  for (;;) x++;
}
