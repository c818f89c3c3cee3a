// rot13 filter: stdin to stdout, in 64 KiB blocks.
#include <stdio.h>
#include <unistd.h>

static char buf[65536];

int main(void) {
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if ((c >= 'a' && c <= 'z')) buf[i] = (char)('a' + (c - 'a' + 13) % 26);
      else if ((c >= 'A' && c <= 'Z')) buf[i] = (char)('A' + (c - 'A' + 13) % 26);
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(1, buf + off, (size_t)(n - off));
      if (w < 0) { perror("write"); return 1; }
      off += w;
    }
  }
  if (n < 0) { perror("read"); return 1; }
  return 0;
}
