/* What an open costs a process that reads its cache (a build's second run): R rounds of
 * open, G gets of the keys a first round wrote, close, on one directory with the seed's
 * five categories. Prints the mean and range of open, of the gets and of close in ms.
 * With G = 0 it is open and close alone.
 *
 *   cc -O2 -Iinclude bench/c/open.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/open_c
 *   /tmp/open_c DIR N R G     (N entries of 1 KiB written once when DIR is new)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nexxo_cache.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static nexxo_cache *open_cache(const char *dir) {
  static const char *cats[] = {"parse", "transform", "bundle", "optimize", "meta"};
  nexxo_options *o = nexxo_options_new();
  for (int i = 0; i < 5; i++) nexxo_options_add_category(o, cats[i]);
  nexxo_cache *c = NULL;
  nexxo_status s = nexxo_cache_open(dir, o, &c);
  nexxo_options_free(o);
  if (s != NEXXO_OK) {
    fprintf(stderr, "open: %s\n", nexxo_status_str(s));
    exit(1);
  }
  return c;
}

struct span {
  double sum, lo, hi;
};

static void add(struct span *s, double v) {
  s->sum += v;
  if (s->lo == 0 || v < s->lo) s->lo = v;
  if (v > s->hi) s->hi = v;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s DIR N R G\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  size_t n = strtoull(argv[2], NULL, 10), rounds = strtoull(argv[3], NULL, 10), g = strtoull(argv[4], NULL, 10);
  char key[64];
  uint8_t value[1024], buf[2048];
  for (size_t i = 0; i < sizeof value; i++) value[i] = (uint8_t)("export const x = h('li');\n"[i % 26]);
  nexxo_cache *c = open_cache(dir);
  nexxo_stats st;
  nexxo_cache_stats(c, &st);
  if (st.entries < n) {
    for (size_t i = 0; i < n; i++) {
      int k = snprintf(key, sizeof key, "src/components/module%zu.tsx", i);
      if (nexxo_cache_set(c, "transform", (const uint8_t *)key, (size_t)k, value, sizeof value) != NEXXO_OK) return 1;
    }
  }
  nexxo_cache_close(c);
  struct span open = {0}, gets = {0}, close = {0};
  for (size_t r = 0; r < rounds; r++) {
    double t0 = now_ms();
    c = open_cache(dir);
    double t1 = now_ms();
    for (size_t i = 0; i < g; i++) {
      int k = snprintf(key, sizeof key, "src/components/module%zu.tsx", i % n);
      size_t len = 0;
      if (nexxo_cache_get_into(c, "transform", (const uint8_t *)key, (size_t)k, buf, sizeof buf, &len) != NEXXO_OK) {
        fprintf(stderr, "get %zu missed\n", i);
        return 1;
      }
    }
    double t2 = now_ms();
    nexxo_cache_close(c);
    double t3 = now_ms();
    add(&open, t1 - t0);
    add(&gets, t2 - t1);
    add(&close, t3 - t2);
  }
  double k = (double)rounds;
  printf("rounds %zu, %zu gets each: open %.2f ms (%.2f-%.2f), gets %.2f ms (%.2f-%.2f), close %.2f ms (%.2f-%.2f), total %.2f ms\n", rounds, g,
         open.sum / k, open.lo, open.hi, gets.sum / k, gets.lo, gets.hi, close.sum / k, close.lo, close.hi, (open.sum + gets.sum + close.sum) / k);
  return 0;
}
