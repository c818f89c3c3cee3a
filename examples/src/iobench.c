// I/O benchmark workload: iobench stdout MIB | iobench write DIR MIB | iobench read DIR MIB.
// Moves MIB mebibytes in 64 KiB blocks to stdout, or writes / reads DIR/io.bin.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: iobench stdout MIB | write DIR MIB | read DIR MIB\n"); return 2; }
  memset(buf, 'x', sizeof buf);
  if (!strcmp(argv[1], "stdout")) {
    long blocks = atol(argv[2]) * 16;
    for (long i = 0; i < blocks; i++)
      if (write(1, buf, sizeof buf) != sizeof buf) { perror("write"); return 1; }
    return 0;
  }
  if (argc < 4) return 2;
  char path[512];
  snprintf(path, sizeof path, "%s/io.bin", argv[2]);
  long blocks = atol(argv[3]) * 16;
  if (!strcmp(argv[1], "write")) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    for (long i = 0; i < blocks; i++)
      if (write(fd, buf, sizeof buf) != sizeof buf) { perror("write"); return 1; }
    close(fd);
    return 0;
  }
  if (!strcmp(argv[1], "read")) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    return total == blocks * 65536 ? 0 : 1;
  }
  return 2;
}
