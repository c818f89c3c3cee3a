// Allocates 1 MiB blocks (touching each) until malloc fails or LIMIT MiB is reached,
// then reports how much it got. Under a memory cap malloc fails cleanly (memory.grow -1).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *blocks[65536];

int main(int argc, char **argv) {
  long limit = argc > 1 ? atol(argv[1]) : 4096;
  long got = 0;
  while (got < limit && got < 65536) {
    char *p = malloc(1 << 20);
    if (!p) break;
    memset(p, (int)got, 1 << 20);
    blocks[got++] = p;
  }
  // Read the blocks back so that no allocation can be optimised away.
  unsigned long sum = 0;
  for (long i = 0; i < got; i++) sum += (unsigned char)blocks[i][i % (1 << 20)];
  printf("allocated %ld MiB (checksum %lu)\n", got, sum);
  return got < limit ? 3 : 0;
}
