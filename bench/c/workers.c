/* Many processes, one cache, from C (the ccache/sccache shape: one process per compile,
 * each a handful of per-key calls): W processes open one directory at once with default
 * options; each sets N values of 1 KiB one by one, then gets them back. Prints each
 * phase's aggregate rate (all processes' operations over the phase's wall time) and the
 * per-call p50/p99 over all processes, and the range of the processes' own p50s. The first
 * process to open owns the store; the others reach it through it (their sets are
 * journaled: README "Many workers, one cache").
 *
 *   cc -O2 -Iinclude bench/c/workers.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/workers_c
 *   /tmp/workers_c DIR W N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nexxo_cache.h"

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Shared with the children: a start flag per phase and each call's latency. */
struct shared {
  volatile int go[2];
  volatile int ready[3]; /* ready[2]: done reading, before close */
  uint64_t lat[];
};

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR WORKERS N\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int w = atoi(argv[2]);
  int n = atoi(argv[3]);
  size_t size = sizeof(struct shared) + sizeof(uint64_t) * (size_t)w * (size_t)n * 2;
  struct shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return 1;
  for (int id = 0; id < w; id++) {
    if (fork() == 0) {
      nexxo_cache *c = NULL;
      if (nexxo_cache_open(dir, NULL, &c) != NEXXO_OK) _exit(3);
      uint8_t value[1024];
      memset(value, 'x', sizeof value);
      char key[64];
      for (int phase = 0; phase < 2; phase++) {
        __atomic_add_fetch(&sh->ready[phase], 1, __ATOMIC_SEQ_CST);
        while (!__atomic_load_n(&sh->go[phase], __ATOMIC_SEQ_CST)) usleep(100);
        uint64_t *lat = &sh->lat[((size_t)phase * (size_t)w + (size_t)id) * (size_t)n];
        for (int i = 0; i < n; i++) {
          int len = snprintf(key, sizeof key, "w%d/src/module%d.c", id, i);
          uint64_t t = now_ns();
          int s;
          if (phase == 0) {
            memcpy(value, &i, sizeof i);
            s = nexxo_cache_set(c, "transform", (const uint8_t *)key, (size_t)len, value, sizeof value);
          } else {
            size_t got = 0;
            s = nexxo_cache_get_into(c, "transform", (const uint8_t *)key, (size_t)len, value, sizeof value, &got);
          }
          lat[i] = now_ns() - t;
          if (s != NEXXO_OK) _exit(4);
        }
      }
      __atomic_add_fetch(&sh->ready[2], 1, __ATOMIC_SEQ_CST);
      nexxo_cache_close(c);
      _exit(0);
    }
  }
  const char *names[2] = {"set", "get"};
  for (int phase = 0; phase < 2; phase++) {
    while (__atomic_load_n(&sh->ready[phase], __ATOMIC_SEQ_CST) < w) usleep(100);
    uint64_t t = now_ns();
    __atomic_store_n(&sh->go[phase], 1, __ATOMIC_SEQ_CST);
    /* The phase ends when every process is ready for the next one (or done reading). */
    while (__atomic_load_n(&sh->ready[phase + 1], __ATOMIC_SEQ_CST) < w) usleep(50);
    uint64_t wall = now_ns() - t;
    if (phase == 1) {
      int failed = 0;
      for (int i = 0; i < w; i++) {
        int st;
        wait(&st);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
      }
      if (failed) {
        fprintf(stderr, "%d processes failed\n", failed);
        return 1;
      }
    }
    uint64_t *lat = &sh->lat[(size_t)phase * (size_t)w * (size_t)n];
    size_t m = (size_t)w * (size_t)n;
    /* Each process's p50 (the owner's and the clients' side by side), then all calls'. */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < w; i++) {
      qsort(lat + (size_t)i * (size_t)n, (size_t)n, sizeof *lat, cmp);
      uint64_t p = lat[(size_t)i * (size_t)n + (size_t)n / 2];
      lo = p < lo ? p : lo;
      hi = p > hi ? p : hi;
    }
    qsort(lat, m, sizeof *lat, cmp);
    printf("%d processes %s: %.0f/s all, p50 %.1f us, p99 %.1f us, p50 of each process %.1f-%.1f us\n", w, names[phase],
           (double)m / ((double)wall / 1e9), (double)lat[m / 2] / 1e3, (double)lat[m * 99 / 100] / 1e3, (double)lo / 1e3,
           (double)hi / 1e3);
  }
  return 0;
}
