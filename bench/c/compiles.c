/* One short process per compile (what ccache's users run under make or Ninja): each
 * process opens the cache, looks its key up, stores its value of L bytes when the key
 * was missing, and exits. N such processes run, P at a time, on one new cache: a first
 * pass where every key misses (a clean build), then a second where every key hits (the
 * next build). Side by side with a directory of one file per entry (ccache's layout:
 * read the file; on a miss write a temporary file and rename it), without and with the
 * fsyncs (file, then directory) that make an entry durable, as an acknowledged
 * nexxo-cache set is. Each process is started with fork and exec of this program, and
 * the nexxo-cache processes load the library (dlopen: the others do not pay for it), so
 * their time includes what loading it costs a compiler wrapper linked with it.
 *
 * Prints, per contestant, parallelism and pass: each process's time from fork to exit
 * (median and p99, ms), processes per second over the pass, and the files the store has
 * at the end (nexxo-cache: its tables, `*.sst`; the others: entries).
 *
 *   build/bench_compiles_c [--n 300] [--len 4096] [--parallel 1,4] [--rounds 3]
 *                          [--contestants nexxo,files,files-sync] [--lib PATH] [--work-ms 0]
 *                          [--prefill 0]
 *
 * --work-ms: what a miss costs besides the cache (the compile), slept between the
 * lookup and the store.
 * --prefill: entries (other keys, the same length) each cache holds before the passes,
 * as a project's cache does after earlier builds; written by one process (nexxo-cache:
 * batches of 1,000, then closed; files: one file each).
 * --lib: the library the nexxo-cache processes load (default: lib/libnexxo_cache.so
 * beside this program, the build directory's layout).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <libgen.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nexxo_cache.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The value of compile `i`: L bytes of object-file-like text. */
static void fill_value(uint8_t *v, size_t len, unsigned i) {
  for (size_t j = 0; j < len; j++) v[j] = (uint8_t)("0123456789abcdef"[(j * 7 + i) % 16] ^ (j % 64 == 0 ? 0x20 : 0));
}

/* A key as a compiler wrapper makes one: a hash of the inputs, as hex. */
static void make_key(char *k, size_t cap, unsigned i) {
  uint64_t h = 1469598103934665603ull ^ i;
  for (int r = 0; r < 4; r++) h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
  snprintf(k, cap, "%016llx%08x", (unsigned long long)h, i);
}

/* The compile: `ms` milliseconds of sleep. */
static void work(unsigned ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (ms && nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* The child: one compile step. Exits 0 on a hit, 3 on a miss it stored, 1 on error. */
static int child(const char *who, const char *dir, unsigned i, size_t len, unsigned work_ms) {
  char key[64];
  make_key(key, sizeof key, i);
  uint8_t *buf = malloc(len + 64), *v = malloc(len);
  if (!buf || !v) return 1;
  if (strncmp(who, "nexxo:", 6) == 0) {
    void *lib = dlopen(who + 6, RTLD_NOW);
    if (!lib) {
      fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    __typeof__(&nexxo_cache_open) open_ = (__typeof__(&nexxo_cache_open))dlsym(lib, "nexxo_cache_open");
    __typeof__(&nexxo_cache_get_into) get_into = (__typeof__(&nexxo_cache_get_into))dlsym(lib, "nexxo_cache_get_into");
    __typeof__(&nexxo_cache_set) set = (__typeof__(&nexxo_cache_set))dlsym(lib, "nexxo_cache_set");
    __typeof__(&nexxo_cache_close) close_ = (__typeof__(&nexxo_cache_close))dlsym(lib, "nexxo_cache_close");
    if (!open_ || !get_into || !set || !close_) return 1;
    nexxo_cache *c = NULL;
    if (open_(dir, NULL, &c) != NEXXO_OK) return 1;
    size_t got = 0;
    nexxo_status s = get_into(c, "transform", (const uint8_t *)key, strlen(key), buf, len + 64, &got);
    int rc = 0;
    if (s == NEXXO_NOT_FOUND) {
      work(work_ms);
      fill_value(v, len, i);
      rc = set(c, "transform", (const uint8_t *)key, strlen(key), v, len) == NEXXO_OK ? 3 : 1;
    } else if (s != NEXXO_OK || got != len) {
      rc = 1;
    }
    close_(c);
    return rc;
  }
  int sync = strcmp(who, "files-sync") == 0;
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s", dir, key);
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, len + 64);
    close(fd);
    return n == (ssize_t)len ? 0 : 1;
  }
  if (errno != ENOENT) return 1;
  work(work_ms);
  fill_value(v, len, i);
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return 1;
  int ok = write(fd, v, len) == (ssize_t)len && (!sync || fsync(fd) == 0);
  ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
  if (ok && sync) {
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    ok = d >= 0 && fsync(d) == 0;
    if (d >= 0) close(d);
  }
  return ok ? 3 : 1;
}

/* Writes `count` entries of keys from..from+count-1 into `dir` as `who` would (in a
 * process of its own: the nexxo-cache one loads the library, and its handle is closed
 * before the passes, whose processes must find no other owner). Returns 0 on success. */
static int prefill(const char *who, const char *dir, unsigned from, unsigned count, size_t len) {
  if (count == 0) return 0;
  pid_t k = fork();
  if (k < 0) return 1;
  if (k > 0) {
    int st;
    return waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
  }
  char key[64];
  uint8_t *v = malloc(len);
  if (!v) _exit(1);
  if (strncmp(who, "nexxo:", 6) == 0) {
    void *lib = dlopen(who + 6, RTLD_NOW);
    if (!lib) _exit(1);
    __typeof__(&nexxo_cache_open) open_ = (__typeof__(&nexxo_cache_open))dlsym(lib, "nexxo_cache_open");
    __typeof__(&nexxo_cache_batch_set) batch_set = (__typeof__(&nexxo_cache_batch_set))dlsym(lib, "nexxo_cache_batch_set");
    __typeof__(&nexxo_cache_close) close_ = (__typeof__(&nexxo_cache_close))dlsym(lib, "nexxo_cache_close");
    nexxo_cache *c = NULL;
    if (!open_ || !batch_set || !close_ || open_(dir, NULL, &c) != NEXXO_OK) _exit(1);
    enum { B = 1000 };
    static char keys[B][64];
    uint8_t *vals = malloc((size_t)B * len);
    nexxo_entry e[B];
    if (!vals) _exit(1);
    for (unsigned at = 0; at < count; at += B) {
      unsigned m = count - at < B ? count - at : B;
      for (unsigned j = 0; j < m; j++) {
        make_key(keys[j], sizeof keys[j], from + at + j);
        fill_value(vals + (size_t)j * len, len, from + at + j);
        e[j] = (nexxo_entry){"transform", (const uint8_t *)keys[j], strlen(keys[j]), vals + (size_t)j * len, len};
      }
      if (batch_set(c, e, m) != NEXXO_OK) _exit(1);
    }
    close_(c);
    _exit(0);
  }
  for (unsigned i = from; i < from + count; i++) {
    char path[4300];
    make_key(key, sizeof key, i);
    snprintf(path, sizeof path, "%s/%s", dir, key);
    fill_value(v, len, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, v, len) != (ssize_t)len || close(fd) != 0) _exit(1);
  }
  _exit(0);
}

static unsigned count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  unsigned n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t l = strlen(e->d_name), s = strlen(suffix);
    if (e->d_name[0] != '.' && l >= s && strcmp(e->d_name + l - s, suffix) == 0) n++;
  }
  closedir(d);
  return n;
}

struct pass {
  double p50, p99, per_s;
  int bad;
};

/* N processes, P at a time; `expect` is the exit status every one must have. */
static struct pass run_pass(const char *self, const char *who, const char *dir, unsigned n, unsigned p, size_t len, unsigned work_ms, int expect) {
  double *t = calloc(n, sizeof *t), *start = calloc(n, sizeof *start);
  pid_t *pid = calloc(n, sizeof *pid);
  struct pass out = {0};
  unsigned next = 0, done = 0, running = 0;
  double t0 = now_ms();
  while (done < n) {
    while (running < p && next < n) {
      char is[16], ls[24], ws[16];
      snprintf(is, sizeof is, "%u", next);
      snprintf(ls, sizeof ls, "%zu", len);
      snprintf(ws, sizeof ws, "%u", work_ms);
      start[next] = now_ms();
      pid_t k = fork();
      if (k == 0) {
        execl(self, self, "child", who, dir, is, ls, ws, (char *)NULL);
        _exit(1);
      }
      pid[next++] = k;
      running++;
    }
    int st;
    pid_t k = wait(&st);
    double at = now_ms();
    for (unsigned j = 0; j < next; j++) {
      if (pid[j] == k) {
        t[j] = at - start[j];
        pid[j] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != expect) out.bad++;
      }
    }
    running--;
    done++;
  }
  out.per_s = n / ((now_ms() - t0) / 1e3);
  qsort(t, n, sizeof *t, cmp_double);
  out.p50 = t[n / 2];
  out.p99 = t[(size_t)((n - 1) * 0.99)];
  free(t);
  free(start);
  free(pid);
  return out;
}

static int cmp_pass(const void *a, const void *b) { return cmp_double(&((const struct pass *)a)->p50, &((const struct pass *)b)->p50); }

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "child") == 0) return child(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 10), strtoull(argv[5], NULL, 10), (unsigned)strtoul(argv[6], NULL, 10));
  unsigned n = 300, rounds = 3, work_ms = 0, pre = 0;
  size_t len = 4096;
  const char *par = "1,4", *who_list = "nexxo,files,files-sync", *lib = NULL;
  for (int a = 1; a + 1 < argc; a += 2) {
    if (strcmp(argv[a], "--n") == 0) n = (unsigned)strtoul(argv[a + 1], NULL, 10);
    else if (strcmp(argv[a], "--len") == 0) len = strtoull(argv[a + 1], NULL, 10);
    else if (strcmp(argv[a], "--parallel") == 0) par = argv[a + 1];
    else if (strcmp(argv[a], "--rounds") == 0) rounds = (unsigned)strtoul(argv[a + 1], NULL, 10);
    else if (strcmp(argv[a], "--contestants") == 0) who_list = argv[a + 1];
    else if (strcmp(argv[a], "--lib") == 0) lib = argv[a + 1];
    else if (strcmp(argv[a], "--work-ms") == 0) work_ms = (unsigned)strtoul(argv[a + 1], NULL, 10);
    else if (strcmp(argv[a], "--prefill") == 0) pre = (unsigned)strtoul(argv[a + 1], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--n N] [--len BYTES] [--parallel 1,4] [--rounds R] [--contestants nexxo,files,files-sync] [--lib PATH] [--work-ms MS] [--prefill N]\n", argv[0]);
      return 2;
    }
  }
  if (n == 0 || rounds == 0) return 2;
  char check[128];
  snprintf(check, sizeof check, "%s", who_list);
  for (char *w = strtok(check, ","); w; w = strtok(NULL, ",")) {
    if (strcmp(w, "nexxo") != 0 && strcmp(w, "files") != 0 && strcmp(w, "files-sync") != 0) {
      fprintf(stderr, "unknown contestant %s (nexxo, files, files-sync)\n", w);
      return 2;
    }
  }
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) return 1;
  self[sl] = 0;
  char nexxo[4200], selfdir[4096];
  snprintf(selfdir, sizeof selfdir, "%s", self);
  if (lib) snprintf(nexxo, sizeof nexxo, "nexxo:%s", lib);
  else snprintf(nexxo, sizeof nexxo, "nexxo:%s/lib/libnexxo_cache.so", dirname(selfdir));
  char base[] = "/tmp/nexxo-compiles-XXXXXX";
  if (!mkdtemp(base)) return 1;
  printf("%u compile processes (fork and exec each), values of %zu bytes, %u ms of work per miss, %u entries in the cache before, %u rounds: ms per process from fork to exit, median (min-max of the rounds' medians)\n\n", n, len, work_ms, pre, rounds);
  printf("| contestant | at once | pass | ms per process, p50 | p99 (worst round) | processes/s (mean) | files at the end |\n|---|---|---|---|---|---|---|\n");
  int failed = 0;
  char pl[64];
  snprintf(pl, sizeof pl, "%s", par);
  for (char *ps = strtok(pl, ","); ps; ps = strtok(NULL, ",")) {
    unsigned p = (unsigned)strtoul(ps, NULL, 10);
    char wl[128];
    snprintf(wl, sizeof wl, "%s", who_list);
    char *save = NULL;
    for (char *who = strtok_r(wl, ",", &save); who; who = strtok_r(NULL, ",", &save)) {
      struct pass r[2][64];
      unsigned files = 0;
      for (unsigned round = 0; round < rounds && round < 64; round++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s-%u-%u", base, who, p, round);
        if (strcmp(who, "nexxo") != 0) mkdir(dir, 0700);
        const char *as = strcmp(who, "nexxo") == 0 ? nexxo : who;
        if (prefill(as, dir, n, pre, len) != 0) {
          fprintf(stderr, "%s: prefilling %u entries failed\n", who, pre);
          return 1;
        }
        r[0][round] = run_pass(self, as, dir, n, p, len, work_ms, 3);
        r[1][round] = run_pass(self, as, dir, n, p, len, work_ms, 0);
        files = count_files(dir, strcmp(who, "nexxo") == 0 ? ".sst" : "");
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) failed = 1;
      }
      unsigned m = rounds < 64 ? rounds : 64;
      for (int pass = 0; pass < 2; pass++) {
        int bad = 0;
        for (unsigned j = 0; j < m; j++) bad += r[pass][j].bad;
        qsort(r[pass], m, sizeof r[pass][0], cmp_pass);
        double p99 = 0, per_s = 0;
        for (unsigned j = 0; j < m; j++) {
          p99 = r[pass][j].p99 > p99 ? r[pass][j].p99 : p99;
          per_s += r[pass][j].per_s / m;
        }
        printf("| %s | %u | %s | %.1f (%.1f-%.1f) | %.1f | %.0f | %u |\n", who, p, pass == 0 ? "first (misses, stores)" : "second (hits)", r[pass][m / 2].p50, r[pass][0].p50, r[pass][m - 1].p50, p99, per_s, files);
        if (bad) {
          fprintf(stderr, "%s, %u at once: %d processes did not end as expected\n", who, p, bad);
          failed = 1;
        }
      }
      fflush(stdout);
    }
  }
  rmdir(base);
  return failed;
}
