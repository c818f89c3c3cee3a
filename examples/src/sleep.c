// Sleeps for the given milliseconds (default 100) through poll_oneoff, then says so.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  long ms = argc > 1 ? atol(argv[1]) : 100;
  struct timespec req = {ms / 1000, (ms % 1000) * 1000000L};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  nanosleep(&req, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long slept = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("slept %ld ms\n", slept);
  return slept >= ms ? 0 : 1;
}
