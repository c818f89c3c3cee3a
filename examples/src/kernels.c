// CPU kernels for the benchmark: kernels NAME [REPEAT] runs kernel NAME REPEAT times (default 1). Each prints a checksum (so that the work
// cannot be optimised away and native and wasm results can be compared) and the time the
// kernel itself took, in milliseconds, measured with CLOCK_MONOTONIC.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t sieve(int scale) {
  int n = 2000000; (void)scale;
  char *composite = calloc((size_t)n + 1, 1);
  uint64_t count = 0;
  for (int rep = 0; rep < 40; rep++) {
    memset(composite, 0, (size_t)n + 1);
    count = 0;
    for (int i = 2; i <= n; i++) {
      if (composite[i]) continue;
      count++;
      // A strided store: wasm SIMD has no scatter, and vectorising it makes it 5x slower.
#pragma clang loop vectorize(disable)
      for (int64_t j = (int64_t)i * i; j <= n; j += i) composite[j] = 1;
    }
  }
  free(composite);
  return count;
}

static uint64_t matmul(int scale) {
  int n = 600; (void)scale;
  double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = calloc((size_t)n * n, sizeof(double));
  for (int i = 0; i < n * n; i++) { a[i] = (i % 7) * 0.5; b[i] = (i % 11) * 0.25; }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++) {
      double aik = a[i * n + k];
      for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
    }
  double sum = 0;
  for (int i = 0; i < n * n; i++) sum += c[i];
  free(a); free(b); free(c);
  return (uint64_t)sum;
}

static uint64_t mandelbrot(int scale) {
  int w = 600, h = 800, iters = 200; (void)scale;
  uint64_t inside = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double cr = -2.0 + 3.0 * x / w, ci = -1.0 + 2.0 * y / h, zr = 0, zi = 0;
      int i = 0;
      while (i < iters && zr * zr + zi * zi < 4.0) {
        double t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
        i++;
      }
      inside += i == iters;
    }
  return inside;
}

static uint64_t crc32_kernel(int scale) {
  (void)scale;
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  size_t n = (size_t)8 << 20;
  unsigned char *buf = malloc(n);
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 31 + 7);
  uint32_t crc = 0;
  for (int rep = 0; rep < 8; rep++) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    crc = ~crc;
  }
  free(buf);
  return crc;
}

static uint64_t fib(int n) { return n < 2 ? (uint64_t)n : fib(n - 1) + fib(n - 2); }

static uint64_t fib_kernel(int scale) { (void)scale; return fib(35); }

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "sieve";
  int repeat = argc > 2 ? atoi(argv[2]) : 1;
  int scale = 1;
  uint64_t r = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t (*kernel)(int) = NULL;
  if (!strcmp(name, "sieve")) kernel = sieve;
  else if (!strcmp(name, "matmul")) kernel = matmul;
  else if (!strcmp(name, "mandelbrot")) kernel = mandelbrot;
  else if (!strcmp(name, "crc32")) kernel = crc32_kernel;
  else if (!strcmp(name, "fib")) kernel = fib_kernel;
  if (!kernel) { fprintf(stderr, "kernels: unknown kernel %s (sieve, matmul, mandelbrot, crc32, fib)\n", name); return 2; }
  for (int i = 0; i < repeat; i++) r += kernel(scale);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  printf("%s %llu %.1f ms\n", name, (unsigned long long)r, ms);
  return 0;
}
