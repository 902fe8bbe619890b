/* A second build whose keys are paths and whose changed files rewrite their entries:
 * open a cache of N entries (the seed's `transform` keys "src/components/module<i>.tsx",
 * written by an earlier build), read 1,000 of them, wait 300 ms, write one new entry
 * (the store opens for writing), then read all N keys in a shuffled order while writing a
 * batch of 10 overwrites every 500 reads, CHANGED overwrites in all. Prints the reads'
 * time. Run it on a copy of the cache (it writes).
 *
 *   cc -O2 -Iinclude bench/c/rewrites.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/rewrites_c
 *   /tmp/rewrites_c DIR N CHANGED
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nexxo_cache.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR N CHANGED\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int n = atoi(argv[2]), changed = atoi(argv[3]);
  if (n < 1000 || changed < 0 || 1000 + changed > n) {
    fprintf(stderr, "N must be at least 1000 and 1000 + CHANGED at most N\n");
    return 2;
  }
  nexxo_cache *c;
  if (nexxo_cache_open(dir, NULL, &c) != NEXXO_OK) return 1;
  int *order = malloc(sizeof(int) * n);
  for (int i = 0; i < n; i++) order[i] = i;
  unsigned s = 7;
  for (int i = n - 1; i > 0; i--) {
    s = s * 1103515245u + 12345u;
    int j = (s & 0x7fffffff) % (i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  static unsigned char buf[1 << 16];
  size_t len;
  char key[64];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "src/components/module%d.tsx", order[i]);
    nexxo_cache_get_into(c, "transform", (const uint8_t *)key, strlen(key), buf, sizeof buf, &len);
  }
  usleep(300000);
  static char keys[10][64], val[1024];
  memset(val, 'y', sizeof val);
  nexxo_entry e[10];
  e[0] = (nexxo_entry){"transform", (const uint8_t *)"src/new-file.tsx", 16, (const uint8_t *)val, sizeof val};
  if (nexxo_cache_batch_set(c, e, 1) != NEXXO_OK) return 1;
  double t0 = now_ms();
  int hits = 0, b = 0;
  for (int k = 0; k < n; k++) {
    if (k % 500 == 0 && b < changed / 10) {
      for (int j = 0; j < 10; j++) {
        snprintf(keys[j], sizeof keys[j], "src/components/module%d.tsx", order[1000 + b * 10 + j]);
        e[j] = (nexxo_entry){"transform", (const uint8_t *)keys[j], strlen(keys[j]), (const uint8_t *)val, sizeof val};
      }
      if (nexxo_cache_batch_set(c, e, 10) != NEXXO_OK) return 1;
      b++;
    }
    snprintf(key, sizeof key, "src/components/module%d.tsx", order[(int)(((long long)k * 7919) % n)]);
    if (nexxo_cache_get_into(c, "transform", (const uint8_t *)key, strlen(key), buf, sizeof buf, &len) == NEXXO_OK) hits++;
  }
  double t1 = now_ms();
  printf("changed %d: read all %.1f ms (%.2f us a get), hits %d of %d\n", b * 10, t1 - t0, (t1 - t0) * 1e3 / n, hits, n);
  nexxo_cache_close(c);
  free(order);
  return 0;
}
