// Touches memory until something stops it: a workload that hits the memory limit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static char *volatile blocks[4096];
int main(void) {
  printf("allocating\n");
  fflush(stdout);
  for (int i = 0; i < 4096; i++) {
    char *p = malloc(1 << 20);
    if (!p) { printf("malloc failed after %d MiB\n", i); return 3; }
    memset(p, i & 0xff, 1 << 20);
    blocks[i] = p;
  }
  printf("4 GiB touched\n");
  return 0;
}
