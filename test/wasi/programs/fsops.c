// A tiny WASI file-system shell for tests that must run in every Keep: each argument is one
// operation on the preopen at fd 3, written OP:ARG[:ARG...]; each prints one line, "ok ..." or
// "errno N" (the WASI errno), so two Keeps can be compared line by line.
//   mkdir:D  rmdir:D  unlink:F  rename:A:B  link:A:B  symlink:TARGET:LINK  readlink:L
//   write:F:TEXT  read:F  stat:P  lstat:P  futimes:F:SECONDS  utimes:P:SECONDS  lutimes:P:SECONDS
//   setflags:F:FLAGS (fd_fdstat_set_flags on a read-only open, then tries to write)
//   sync:F (fd_datasync then fd_sync on a file opened for writing)
//   movedsync:F:A:B:SECONDS (open F for writing, rename A to B (F itself, or a directory above
//     it), then fd_sync and fd_filestat_set_times through the descriptor)
//   excl:F (O_CREAT|O_EXCL, following symlinks)  longsym:N:LINK (a symlink with an N-byte target)
// With a second preopen at fd 4 (a read-only one, in the tests):
//   rolink:A:B (hard link fd4:A to fd3:B)  rotimes (fd_filestat_set_times on fd 4 itself)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#define DIR 3

static int report(__wasi_errno_t e) {
  if (e) printf("errno %u\n", (unsigned)e);
  return e;
}

static __wasi_errno_t open_at(const char *path, __wasi_lookupflags_t lf, __wasi_oflags_t of, __wasi_rights_t rights,
                              __wasi_fdflags_t ff, __wasi_fd_t *fd) {
  return __wasi_path_open(DIR, lf, path, of, rights, rights, ff, fd);
}

static void print_stat(const __wasi_filestat_t *st) {
  printf("ok type=%u size=%llu mtime=%llu\n", (unsigned)st->filetype, (unsigned long long)st->size,
         (unsigned long long)(st->mtim / 1000000000ull));
}

static void op(char *spec) {
  char *args[5] = {0};
  int n = 0;
  for (char *p = spec; p && n < 5; n++) {
    args[n] = p;
    p = strchr(p, ':');
    if (p) *p++ = 0;
  }
  const char *o = args[0], *a = args[1] ? args[1] : "", *b = args[2] ? args[2] : "";
  printf("%s ", o);
  __wasi_fd_t fd;
  __wasi_filestat_t st;
  __wasi_errno_t e;
  if (!strcmp(o, "mkdir")) { if (!report(__wasi_path_create_directory(DIR, a))) puts("ok"); }
  else if (!strcmp(o, "rmdir")) { if (!report(__wasi_path_remove_directory(DIR, a))) puts("ok"); }
  else if (!strcmp(o, "unlink")) { if (!report(__wasi_path_unlink_file(DIR, a))) puts("ok"); }
  else if (!strcmp(o, "rename")) { if (!report(__wasi_path_rename(DIR, a, DIR, b))) puts("ok"); }
  else if (!strcmp(o, "link")) { if (!report(__wasi_path_link(DIR, 0, a, DIR, b))) puts("ok"); }
  else if (!strcmp(o, "symlink")) { if (!report(__wasi_path_symlink(a, DIR, b))) puts("ok"); }
  else if (!strcmp(o, "readlink")) {
    uint8_t buf[256];
    __wasi_size_t len;
    if (!report(__wasi_path_readlink(DIR, a, buf, sizeof buf, &len))) printf("ok %.*s\n", (int)len, (char *)buf);
  } else if (!strcmp(o, "write")) {
    if (report(open_at(a, 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE, 0, &fd))) return;
    __wasi_ciovec_t iov = {(const uint8_t *)b, strlen(b)};
    __wasi_size_t w;
    if (!report(__wasi_fd_write(fd, &iov, 1, &w))) printf("ok %u\n", (unsigned)w);
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "read")) {
    if (report(open_at(a, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, 0, __WASI_RIGHTS_FD_READ, 0, &fd))) return;
    uint8_t buf[256];
    __wasi_iovec_t iov = {buf, sizeof buf};
    __wasi_size_t r;
    if (!report(__wasi_fd_read(fd, &iov, 1, &r))) printf("ok %.*s\n", (int)r, (char *)buf);
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "stat") || !strcmp(o, "lstat")) {
    if (!report(__wasi_path_filestat_get(DIR, o[0] == 's' ? __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW : 0, a, &st))) print_stat(&st);
  } else if (!strcmp(o, "futimes")) {
    __wasi_timestamp_t t = strtoull(b, 0, 10) * 1000000000ull;
    __wasi_rights_t r = __WASI_RIGHTS_FD_FILESTAT_SET_TIMES | __WASI_RIGHTS_FD_FILESTAT_GET | __WASI_RIGHTS_FD_READ;
    if (report(open_at(a, 0, 0, r, 0, &fd))) return;
    if (!report(__wasi_fd_filestat_set_times(fd, t, t, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM)) &&
        !report(__wasi_fd_filestat_get(fd, &st)))
      print_stat(&st);
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "utimes") || !strcmp(o, "lutimes")) {
    __wasi_timestamp_t t = strtoull(b, 0, 10) * 1000000000ull;
    __wasi_lookupflags_t lf = o[0] == 'u' ? __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW : 0;
    if (!report(__wasi_path_filestat_set_times(DIR, lf, a, t, t, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM)) &&
        !report(__wasi_path_filestat_get(DIR, lf, a, &st)))
      print_stat(&st);
  } else if (!strcmp(o, "setflags")) {
    if (report(open_at(a, 0, 0, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_FDSTAT_SET_FLAGS, 0, &fd))) return;
    e = __wasi_fd_fdstat_set_flags(fd, (__wasi_fdflags_t)strtoul(b, 0, 10));
    __wasi_ciovec_t iov = {(const uint8_t *)"X", 1};
    __wasi_size_t w;
    __wasi_errno_t we = __wasi_fd_write(fd, &iov, 1, &w);
    printf("set=%u write=%u\n", (unsigned)e, (unsigned)we);
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "sync")) {
    if (report(open_at(a, 0, 0, __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SYNC | __WASI_RIGHTS_FD_DATASYNC, 0, &fd))) return;
    __wasi_ciovec_t iov = {(const uint8_t *)"synced", 6};
    __wasi_size_t w;
    if (!report(__wasi_fd_write(fd, &iov, 1, &w)) && !report(__wasi_fd_datasync(fd)) && !report(__wasi_fd_sync(fd))) puts("ok");
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "movedsync")) {
    __wasi_rights_t r = __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SYNC | __WASI_RIGHTS_FD_FILESTAT_SET_TIMES | __WASI_RIGHTS_FD_FILESTAT_GET;
    if (report(open_at(a, 0, 0, r, 0, &fd))) return;
    __wasi_timestamp_t t = strtoull(args[4] ? args[4] : "0", 0, 10) * 1000000000ull;
    if (!report(__wasi_path_rename(DIR, b, DIR, args[3] ? args[3] : "")) && !report(__wasi_fd_sync(fd)) &&
        !report(__wasi_fd_filestat_set_times(fd, t, t, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM)) &&
        !report(__wasi_fd_filestat_get(fd, &st)))
      print_stat(&st);
    (void)__wasi_fd_close(fd);
  } else if (!strcmp(o, "excl")) {
    if (!report(open_at(a, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, __WASI_RIGHTS_FD_WRITE, 0, &fd))) {
      puts("ok");
      (void)__wasi_fd_close(fd);
    }
  } else if (!strcmp(o, "longsym")) {
    size_t len = strtoul(a, 0, 10);
    char *target = malloc(len + 1);
    memset(target, 'x', len);
    target[len] = 0;
    if (!report(__wasi_path_symlink(target, DIR, b))) puts("ok");
    free(target);
  } else if (!strcmp(o, "rolink")) {
    if (!report(__wasi_path_link(4, 0, a, DIR, b))) puts("ok");
  } else if (!strcmp(o, "rotimes")) {
    if (!report(__wasi_fd_filestat_set_times(4, 0, 0, __WASI_FSTFLAGS_ATIM_NOW | __WASI_FSTFLAGS_MTIM_NOW))) puts("ok");
  } else {
    puts("unknown");
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) op(argv[i]);
  return 0;
}
