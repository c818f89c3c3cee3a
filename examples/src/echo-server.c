// Echo server on an Enarx.toml `listen` file: echoes every byte back to each client, one
// connection at a time. With prot = "tls" the TLS ends inside the Keep; this code sees
// plaintext either way. Usage: echo-server [FILE-NAME [CONNECTIONS]] (default "ingest", forever).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd_named.h"

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "ingest";
  long connections = argc > 2 ? atol(argv[2]) : -1;
  int listener = fd_named(name);
  if (listener < 0) {
    fprintf(stderr, "echo-server: no file named '%s' in FD_NAMES (add a listen file to Enarx.toml)\n", name);
    return 2;
  }
  static char buf[65536];
  for (long served = 0; connections < 0 || served < connections; served++) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) {
      perror("echo-server: accept");
      return 1;
    }
    ssize_t n;
    while ((n = recv(client, buf, sizeof buf, 0)) > 0) {
      for (ssize_t off = 0; off < n;) {
        ssize_t w = send(client, buf + off, n - off, 0);
        if (w < 0) break;
        off += w;
      }
    }
    close(client);
    fprintf(stderr, "echo-server: connection %ld closed\n", served + 1);
  }
  return 0;
}
