// Shared by the socket examples: finds a descriptor by its Enarx.toml file name.
#ifndef FD_NAMED_H
#define FD_NAMED_H
#include <stdlib.h>
#include <string.h>

// The descriptor of the Enarx.toml file called `name`: its position in FD_NAMES.
static int fd_named(const char *name) {
  const char *names = getenv("FD_NAMES");
  if (!names) return -1;
  int fd = 0;
  size_t len = strlen(name);
  for (const char *p = names;; fd++) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && strncmp(p, name, n) == 0) return fd;
    if (!end) return -1;
    p = end + 1;
  }
}

#endif
