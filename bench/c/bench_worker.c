/* One benchmark run of nexxo-cache through the C ABI, for bench/run.py; prints one JSON
 * object. Usage: bench_worker_c <workload> <count> <value_len> <dir>, workloads
 * write-read, batch, cold-open (as crates/nexxo-core/examples/bench_worker.rs). */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_util.h"

static unsigned long long du_total;

static int du_add(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)path;
  (void)ftw;
  if (flag == FTW_F) du_total += (unsigned long long)st->st_blocks * 512u;
  return 0;
}

/* The blocks the files under dir take (as `du`, and the other workers). */
static unsigned long long du(const char *dir) {
  du_total = 0;
  nftw(dir, du_add, 16, FTW_PHYS);
  return du_total;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *xs, size_t n, double p) {
  if (n == 0) return 0;
  qsort(xs, n, sizeof *xs, cmp_double);
  return xs[(size_t)((double)(n - 1) * p)];
}

/* JavaScript-like text, as the Rust and Node workers write. */
static uint8_t *value(int i, size_t len) {
  uint8_t *v = malloc(len + 256);
  size_t n = 0;
  while (n < len) {
    n += (size_t)snprintf((char *)v + n, 256, "export function C%d_%zu(p) { return h('ul', p.items.map((x) => h('li', x))); }\n", i, n);
  }
  return v;
}

static void key(char *buf, size_t cap, size_t i) { snprintf(buf, cap, "src/components/module%zu.tsx", i); }

static size_t *order(size_t n) {
  size_t *o = malloc(n * sizeof *o);
  for (size_t i = 0; i < n; i++) o[i] = i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)(((uint64_t)i * 2654435761u) % (i + 1));
    size_t t = o[i];
    o[i] = o[j];
    o[j] = t;
  }
  return o;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s <write-read|batch|cold-open> <count> <value_len> <dir>\n", argv[0]);
    return 2;
  }
  const char *workload = argv[1];
  size_t n = (size_t)strtoull(argv[2], NULL, 10), len = (size_t)strtoull(argv[3], NULL, 10);
  const char *dir = argv[4];
  uint8_t *values[64];
  for (int i = 0; i < 64; i++) values[i] = value(i, len);
  uint8_t *buf = malloc(len + 64);
  size_t *o = order(n);
  char k[64];
  printf("{\"contestant\":\"nexxo-c\",\"workload\":\"%s\",\"count\":%zu,\"value_len\":%zu", workload, n, len);
  double t0 = now_s();
  nexxo_cache *c = NULL;
  CHECK(nexxo_cache_open(dir, NULL, &c));
  if (strcmp(workload, "cold-open") == 0) {
    double opened = now_s() - t0;
    size_t got = 0, hits = 0;
    key(k, sizeof k, o[0]);
    hits += nexxo_cache_get_into(c, "transform", (const uint8_t *)k, strlen(k), buf, len + 64, &got) == NEXXO_OK;
    double first = now_s() - t0;
    for (size_t i = 1; i < n; i++) {
      key(k, sizeof k, o[i]);
      hits += nexxo_cache_get_into(c, "transform", (const uint8_t *)k, strlen(k), buf, len + 64, &got) == NEXXO_OK;
    }
    double all = now_s() - t0;
    printf(",\"open_ms\":%f,\"first_read_ms\":%f,\"read_all_ops_per_s\":%f,\"hit_rate\":%f}\n", opened * 1e3, first * 1e3,
           (double)n / (all - opened), (double)hits / (double)n);
    nexxo_cache_close(c);
    return 0;
  }
  double *lat = malloc(n * sizeof *lat);
  size_t nl = 0;
  uint64_t logical = 0;
  double t = now_s();
  if (strcmp(workload, "batch") == 0) {
    nexxo_entry *batch = malloc(1000 * sizeof *batch);
    char (*keys)[64] = malloc(1000 * sizeof *keys);
    for (size_t i = 0; i < n; i += 1000) {
      size_t m = n - i < 1000 ? n - i : 1000;
      for (size_t j = 0; j < m; j++) {
        key(keys[j], sizeof keys[j], i + j);
        batch[j] = (nexxo_entry){"transform", (const uint8_t *)keys[j], strlen(keys[j]), values[(i + j) % 64], len};
        logical += strlen(keys[j]) + len;
      }
      double s = now_s();
      CHECK(nexxo_cache_batch_set(c, batch, m));
      lat[nl++] = (now_s() - s) * 1e6;
    }
    free(batch);
    free(keys);
  } else {
    for (size_t i = 0; i < n; i++) {
      key(k, sizeof k, i);
      double s = now_s();
      CHECK(nexxo_cache_set(c, "transform", (const uint8_t *)k, strlen(k), values[i % 64], len));
      lat[nl++] = (now_s() - s) * 1e6;
      logical += strlen(k) + len;
    }
  }
  double w = now_s() - t;
  const char *which = strcmp(workload, "batch") == 0 ? "batch" : "write";
  double p50 = pct(lat, nl, 0.5), p99 = pct(lat, nl, 0.99);
  printf(",\"write_ops_per_s\":%f,\"%s_p50_us\":%f,\"%s_p99_us\":%f", (double)n / w, which, p50, which, p99);
  size_t hits = 0, got = 0;
  t = now_s();
  for (size_t i = 0; i < n; i++) {
    key(k, sizeof k, o[i]);
    double s = now_s();
    hits += nexxo_cache_get_into(c, "transform", (const uint8_t *)k, strlen(k), buf, len + 64, &got) == NEXXO_OK;
    lat[i] = (now_s() - s) * 1e6;
  }
  double r = now_s() - t;
  double rp50 = pct(lat, n, 0.5), rp99 = pct(lat, n, 0.99);
  if (strcmp(workload, "batch") == 0) {
    /* The same reads, untimed per call, as a loop of nexxo_cache_get and as
     * nexxo_cache_batch_get of 1000 keys: both hand out nexxo_bytes. */
    t = now_s();
    for (size_t i = 0; i < n; i++) {
      key(k, sizeof k, o[i]);
      nexxo_bytes b = {NULL, 0};
      if (nexxo_cache_get(c, "transform", (const uint8_t *)k, strlen(k), &b) != NEXXO_OK) return 1;
      nexxo_bytes_free(&b);
    }
    double loop = now_s() - t;
    nexxo_key *ks = malloc(1000 * sizeof *ks);
    char (*kt)[64] = malloc(1000 * sizeof *kt);
    nexxo_bytes *vals = malloc(1000 * sizeof *vals);
    nexxo_status *sts = malloc(1000 * sizeof *sts);
    t = now_s();
    for (size_t i = 0; i < n; i += 1000) {
      size_t m = n - i < 1000 ? n - i : 1000;
      for (size_t j = 0; j < m; j++) {
        key(kt[j], sizeof kt[j], o[i + j]);
        ks[j] = (nexxo_key){"transform", (const uint8_t *)kt[j], strlen(kt[j])};
      }
      CHECK(nexxo_cache_batch_get(c, ks, m, vals, sts));
      for (size_t j = 0; j < m; j++) {
        if (sts[j] != NEXXO_OK) return 1;
        nexxo_bytes_free(&vals[j]);
      }
    }
    double batched = now_s() - t;
    printf(",\"loop_get_ops_per_s\":%f,\"batch_get_ops_per_s\":%f", (double)n / loop, (double)n / batched);
    free(ks);
    free(kt);
    free(vals);
    free(sts);
  }
  CHECK(nexxo_cache_compact(c, NULL));
  /* Measured once closed: a close writes files too (the warm table's image). */
  nexxo_cache_close(c);
  printf(",\"read_ops_per_s\":%f,\"read_p50_us\":%f,\"read_p99_us\":%f,\"hit_rate\":%f,\"disk_bytes\":%llu,\"logical_bytes\":%llu}\n",
         (double)n / r, rp50, rp99, (double)hits / (double)n, du(dir), (unsigned long long)logical);
  return 0;
}
