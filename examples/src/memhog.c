// Allocates 1 MiB blocks (touching each) until malloc fails or LIMIT MiB is reached,
// then reports how much it got. Under a memory cap malloc fails cleanly (memory.grow -1).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  long limit = argc > 1 ? atol(argv[1]) : 4096;
  long got = 0;
  while (got < limit) {
    char *p = malloc(1 << 20);
    if (!p) break;
    memset(p, 0xa5, 1 << 20);
    got++;
  }
  printf("allocated %ld MiB\n", got);
  return got < limit ? 3 : 0;
}
