// File I/O in a preopened directory: fileio DIR writes DIR/notes.txt, appends, reads it back,
// lists DIR, renames the file and removes it. Each step prints what it did.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fail(const char *what, const char *path) {
  fprintf(stderr, "fileio: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  char path[512], renamed[512], line[256];
  snprintf(path, sizeof path, "%s/notes.txt", dir);
  snprintf(renamed, sizeof renamed, "%s/notes.old", dir);

  FILE *f = fopen(path, "w");
  if (!f) fail("create", path);
  fputs("first line\n", f);
  fclose(f);
  f = fopen(path, "a");
  if (!f) fail("append to", path);
  fputs("second line\n", f);
  fclose(f);

  f = fopen(path, "r");
  if (!f) fail("open", path);
  while (fgets(line, sizeof line, f)) printf("read: %s", line);
  fclose(f);

  struct stat st;
  if (stat(path, &st) != 0) fail("stat", path);
  printf("size: %lld\n", (long long)st.st_size);

  DIR *d = opendir(dir);
  if (!d) fail("list", dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) printf("entry: %s\n", e->d_name);
  }
  closedir(d);

  if (rename(path, renamed) != 0) fail("rename", path);
  if (access(path, F_OK) == 0) { fprintf(stderr, "fileio: %s still exists\n", path); return 1; }
  if (unlink(renamed) != 0) fail("remove", renamed);
  puts("done");
  return 0;
}
