// Prints its arguments, its environment and its preopened directories, one per line,
// so that tests and users can see exactly what a Keep gives a guest.
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

extern char **environ;

int main(int argc, char **argv) {
  for (int i = 0; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env: %s\n", *e);
  for (__wasi_fd_t fd = 3; fd < 64; fd++) {
    __wasi_prestat_t ps;
    if (__wasi_fd_prestat_get(fd, &ps) != 0) continue;
    char name[256] = {0};
    size_t len = ps.u.dir.pr_name_len < sizeof name - 1 ? ps.u.dir.pr_name_len : sizeof name - 1;
    if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0) break;
    printf("preopen %u: %s\n", fd, name);
  }
  return 0;
}
