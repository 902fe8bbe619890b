/* What a batch write costs per entry: one store, R rounds of a batch of 1,000 new keys
 * (1 KiB of JS-like text each, keys in no order) then the same keys again (overwrites).
 * Prints the mean microseconds per entry of each over the rounds after the first 5
 * (the calls' wall time: the store's flushes and compactions share the cores).
 *
 *   cc -O2 -Iinclude bench/c/batches.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/batches_c
 *   /tmp/batches_c DIR R      (DIR is removed and made anew; R > 5)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nexxo_cache.h"

#define N 1000

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc != 3 || atoi(argv[2]) <= 5) {
    fprintf(stderr, "usage: %s DIR ROUNDS (> 5)\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int rounds = atoi(argv[2]);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 1;
  nexxo_cache *c;
  if (nexxo_cache_open(dir, NULL, &c) != NEXXO_OK) return 1;
  static char keys[N][64], vals[N][1100];
  static nexxo_entry e[N];
  double fresh = 0, again = 0;
  int counted = 0;
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < N; i++) {
      /* a multiplicative hash of the index: keys in no order, as content hashes are */
      snprintf(keys[i], sizeof keys[i], "src/r%d/%016llx.tsx", r, (unsigned long long)((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull));
      int l = 0;
      while (l < 1024) l += snprintf(vals[i] + l, sizeof vals[i] - l, "export const v%d_%d = require('./m%d').default;\n", i, l, i % 97);
      e[i] = (nexxo_entry){"transform", (const uint8_t *)keys[i], strlen(keys[i]), (const uint8_t *)vals[i], 1024};
    }
    double t0 = now_us();
    if (nexxo_cache_batch_set(c, e, N) != NEXXO_OK) return 1;
    double t1 = now_us();
    if (nexxo_cache_batch_set(c, e, N) != NEXXO_OK) return 1;
    double t2 = now_us();
    if (r >= 5) {
      fresh += (t1 - t0) / N;
      again += (t2 - t1) / N;
      counted++;
    }
  }
  printf("new keys %.3f us/entry, the same keys again %.3f us/entry (%d rounds)\n", fresh / counted, again / counted, counted);
  nexxo_cache_close(c);
  return 0;
}
