/* What the C benchmark programs share: a monotonic clock and a check that exits on a
 * failed call. */
#ifndef NEXXO_BENCH_UTIL_H
#define NEXXO_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nexxo_cache.h"

static inline double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define CHECK(expr)                                                        \
  do {                                                                     \
    nexxo_status s_ = (expr);                                              \
    if (s_ != NEXXO_OK) {                                                  \
      fprintf(stderr, "%s: %s\n", #expr, nexxo_status_str(s_));            \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

#endif
