// Prints a greeting, then echoes stdin: the provisioned workload of the keepmgr tests.
#include <stdio.h>
int main(int argc, char **argv) {
  printf("hello from a Keep\n");
  fflush(stdout);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
  fprintf(stderr, "argc=%d\n", argc);
  return 0;
}
