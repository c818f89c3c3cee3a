// Reads a deployed package's data files (enarx deploy preopens the package read-only at /package):
// `catpkg FILE...` prints "catpkg: started", then each /package/FILE, then checks that /package
// refuses writes. The first line lets tests tell whether any guest code ran.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char path[512], buf[4096];
  printf("catpkg: started\n");
  fflush(stdout);
  for (int i = 1; i < argc; i++) {
    snprintf(path, sizeof path, "/package/%s", argv[i]);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
      fprintf(stderr, "catpkg: %s: %s\n", path, strerror(errno));
      return 1;
    }
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
  }
  int fd = open("/package/written-by-guest", O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) {
    printf("catpkg: /package is WRITABLE\n");
    return 3;
  }
  printf("catpkg: /package is read-only (%s)\n", strerror(errno));
  return 0;
}
