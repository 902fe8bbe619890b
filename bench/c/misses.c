/* A first build's gets, which all miss: on a new cache at DIR, STEPS rounds of 20,000
 * gets of absent keys, each round followed by a batch write of 25,000 new entries (1 KiB
 * of JS-like text each) in batches of 1,000. Prints the misses' cost per round, by how
 * many entries the cache holds by then. DIR must not exist.
 *
 *   cc -O2 -Iinclude bench/c/misses.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/misses_c
 *   /tmp/misses_c DIR [STEPS]
 *
 * To compare two libraries on one binary: LD_PRELOAD=/path/to/libnexxo_cache.so.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s DIR [STEPS]\n", argv[0]);
    return 2;
  }
  int steps = argc == 3 ? atoi(argv[2]) : 4;
  char value[1024];
  for (size_t n = 0; n < sizeof value;) {
    int w = snprintf(value + n, sizeof value - n, "export const a%zu = () => h('li', x);\n", n);
    if (w <= 0) break;
    n += (size_t)w;
  }
  nexxo_cache *c = NULL;
  CHECK(nexxo_cache_open(argv[1], NULL, &c));
  static char keys[1000][64];
  nexxo_entry batch[1000];
  uint8_t buf[2048];
  size_t got;
  char k[64];
  printf("entries   miss (us)\n");
  for (int step = 0; step <= steps; step++) {
    double t = now_s();
    size_t hits = 0;
    for (int i = 0; i < 20000; i++) {
      int l = snprintf(k, sizeof k, "src/missing/module%d-%d.tsx", i, step);
      hits += nexxo_cache_get_into(c, "transform", (const uint8_t *)k, (size_t)l, buf, sizeof buf, &got) == NEXXO_OK;
    }
    printf("%7d   %.3f\n", step * 25000, (now_s() - t) * 1e6 / 20000);
    if (hits != 0) {
      fprintf(stderr, "a get of an absent key hit\n");
      return 1;
    }
    if (step == steps) break;
    for (int b = 0; b < 25; b++) {
      for (int j = 0; j < 1000; j++) {
        int l = snprintf(keys[j], sizeof keys[j], "src/components/module%d.tsx", (step * 25 + b) * 1000 + j);
        batch[j] = (nexxo_entry){"transform", (const uint8_t *)keys[j], (size_t)l, (const uint8_t *)value, sizeof value};
      }
      CHECK(nexxo_cache_batch_set(c, batch, 1000));
    }
  }
  nexxo_cache_close(c);
  return 0;
}
