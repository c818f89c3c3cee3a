// Client on an Enarx.toml `connect` file: sends its stdin to the server, then prints what the
// server sends back until it closes. Usage: echo-client [FILE-NAME] (default "server").
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd_named.h"

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "server";
  int sock = fd_named(name);
  if (sock < 0) {
    fprintf(stderr, "echo-client: no file named '%s' in FD_NAMES (add a connect file to Enarx.toml)\n", name);
    return 2;
  }
  static char buf[65536];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = send(sock, buf + off, n - off, 0);
      if (w < 0) { perror("echo-client: send"); return 1; }
      off += w;
    }
  }
  shutdown(sock, SHUT_WR);
  while ((n = recv(sock, buf, sizeof buf, 0)) > 0) fwrite(buf, 1, n, stdout);
  if (n < 0) { perror("echo-client: recv"); return 1; }
  return 0;
}
