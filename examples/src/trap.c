// Traps on purpose: an integer division by zero the compiler cannot see coming.
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int divide(int a, int b) { return a / b; }

int main(int argc, char **argv) {
  (void)argv;
  printf("about to divide by %d\n", argc - 1);
  fflush(stdout);
  return divide(10, argc - 1);
}
