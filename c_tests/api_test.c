/* The C ABI's behaviour, one named case per ctest test: `api_test NAME` runs one case,
 * `api_test` runs them all. Each case works in a fresh temporary directory. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nexxo_cache.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                              \
    }                                                                        \
  } while (0)

#define CHECK_ST(expr, want)                                                          \
  do {                                                                                \
    nexxo_status got_ = (expr);                                                       \
    if (got_ != (want)) {                                                             \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__,     \
              __LINE__, #expr, (int)got_, nexxo_status_str(got_), (int)(want),        \
              nexxo_status_str(want));                                                \
      return 1;                                                                       \
    }                                                                                 \
  } while (0)

#define OK(expr) CHECK_ST(expr, NEXXO_OK)
#define K(s) (const uint8_t *)(s), strlen(s)

static char g_dir[4096];

/* A new empty directory for one case; the cache goes in a subdirectory of it. */
static const char *fresh_dir(void) {
  const char *base = getenv("NEXXO_TEST_TMP");
  if (!base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(g_dir, sizeof g_dir, "%s/nexxo-c-XXXXXX", base);
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    exit(2);
  }
  return g_dir;
}

static char *path_in(const char *dir, const char *name) {
  static char buf[8][4096];
  static int i;
  char *p = buf[i++ % 8];
  char base[4096]; /* dir may be an earlier result of this function */
  snprintf(base, sizeof base, "%.4000s", dir);
  snprintf(p, 4096, "%.4000s/%.80s", base, name);
  return p;
}

static nexxo_cache *open_or_die(const char *path, const nexxo_options *o) {
  nexxo_cache *c = NULL;
  nexxo_status s = nexxo_cache_open(path, o, &c);
  if (s != NEXXO_OK) {
    fprintf(stderr, "open %s: %s\n", path, nexxo_status_str(s));
    exit(2);
  }
  return c;
}

static int get_equals(nexxo_cache *c, const char *cat, const char *key, const void *want, size_t want_len) {
  nexxo_bytes b = {NULL, 0};
  nexxo_status s = nexxo_cache_get(c, cat, K(key), &b);
  int ok = s == NEXXO_OK && b.len == want_len && (want_len == 0 || memcmp(b.data, want, want_len) == 0);
  nexxo_bytes_free(&b);
  return ok;
}

static int is_miss(nexxo_cache *c, const char *cat, const char *key) {
  nexxo_bytes b = {(uint8_t *)1, 1};
  nexxo_status s = nexxo_cache_get(c, cat, K(key), &b);
  return s == NEXXO_NOT_FOUND && b.data == NULL && b.len == 0;
}

/* ~1 KiB of JavaScript-like text that differs per index. */
static size_t artifact(char *buf, size_t cap, int i) {
  size_t n = 0;
  while (n + 80 < cap && n < 1000) {
    n += (size_t)snprintf(buf + n, cap - n, "export function f%d_%zu(a){return a.map(x=>x*%d+%zu);}\n", i, n, i, n);
  }
  return n;
}

#define TEST(name) static int test_##name(void)

TEST(version_and_status_str) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", NEXXO_CACHE_VERSION_MAJOR, NEXXO_CACHE_VERSION_MINOR, NEXXO_CACHE_VERSION_PATCH);
  CHECK(strcmp(nexxo_version(), want) == 0);
  CHECK(strcmp(nexxo_status_str(NEXXO_OK), "ok") == 0);
  CHECK(strcmp(nexxo_status_str(NEXXO_LOCKED), "cache directory locked by another writer") == 0);
  for (int s = 0; s <= 14; s++) CHECK(strcmp(nexxo_status_str((nexxo_status)s), "unknown status") != 0);
  CHECK(strcmp(nexxo_status_str((nexxo_status)15), "unknown status") == 0);
  CHECK(strcmp(nexxo_status_str((nexxo_status)-1), "unknown status") == 0);
  CHECK(NEXXO_MAX_KEY_LEN >= 4096);
  CHECK(NEXXO_MAX_VALUE_LEN >= 256u * 1024 * 1024);
  return 0;
}

TEST(options_validation) {
  nexxo_options *o = nexxo_options_new();
  CHECK(o != NULL);
  OK(nexxo_options_set_max_size(o, 0));
  OK(nexxo_options_set_max_size(o, UINT64_MAX));
  OK(nexxo_options_set_max_age(o, 3600));
  OK(nexxo_options_set_sync_writes(o, true));
  OK(nexxo_options_set_read_only(o, false));
  OK(nexxo_options_set_fallback_disabled(o, false));
  OK(nexxo_options_set_compression(o, NEXXO_COMPRESSION_NONE));
  CHECK_ST(nexxo_options_set_compression(o, (nexxo_compression)7), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_memory_budget(o, 1024), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_memory_budget(o, 16u << 20));
  OK(nexxo_options_add_category(o, "lint"));
  OK(nexxo_options_add_category(o, "lint"));
  CHECK_ST(nexxo_options_add_category(o, "Bad Name"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_category(o, ""), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_category(o, "\xff\xfe"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_category(o, "abcdefghijklmnopqrstuvwxyz0123456"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_category(o, NULL), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_category_max_size(o, "lint", 1 << 20));
  OK(nexxo_options_set_category_max_size(o, "transform", 1 << 20));
  CHECK_ST(nexxo_options_set_category_max_size(o, "nope", 1), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_options_set_category_max_size(o, NULL, 1), NEXXO_INVALID_ARGUMENT);
  /* NULL options everywhere */
  CHECK_ST(nexxo_options_set_max_size(NULL, 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_max_age(NULL, 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_category(NULL, "x"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_compression(NULL, NEXXO_COMPRESSION_LZ4), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_sync_writes(NULL, true), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_read_only(NULL, true), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_fallback_disabled(NULL, true), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_memory_budget(NULL, 1u << 30), NEXXO_INVALID_ARGUMENT);
  nexxo_options_free(o);
  nexxo_options_free(NULL);
  return 0;
}

TEST(open_creates_directories) {
  const char *d = fresh_dir();
  const char *p = path_in(d, "a/b/c/cache");
  nexxo_cache *c = open_or_die(p, NULL);
  struct stat st;
  CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 0777) == 0700);
  nexxo_cache_close(c);
  nexxo_cache_close(NULL);
  return 0;
}

TEST(open_bad_arguments) {
  const char *d = fresh_dir();
  nexxo_cache *c = NULL;
  CHECK_ST(nexxo_cache_open(NULL, NULL, &c), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_open(path_in(d, "x"), NULL, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_open("", NULL, &c), NEXXO_INVALID_ARGUMENT);
  CHECK(c == NULL);
  /* A path that is a regular file. */
  const char *f = path_in(d, "file");
  FILE *fp = fopen(f, "w");
  CHECK(fp != NULL);
  fputs("not a cache\n", fp);
  fclose(fp);
  CHECK_ST(nexxo_cache_open(f, NULL, &c), NEXXO_IO_ERROR);
  CHECK(c == NULL);
  /* Calls on a handle that open never produced. */
  nexxo_bytes b = {NULL, 0};
  nexxo_stats st;
  CHECK_ST(nexxo_cache_get(NULL, "parse", K("k"), &b), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set(NULL, "parse", K("k"), NULL, 0), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_delete(NULL, "parse", K("k")), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_stats(NULL, &st), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_stats_json(NULL, &b), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_category_stats(NULL, "parse", &st), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_enforce_policy(NULL, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_compact(NULL, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_clear(NULL, NULL, 0), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_flush(NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_batch_set(NULL, NULL, 0), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_batch_get(NULL, NULL, 0, NULL, NULL), NEXXO_INVALID_ARGUMENT);
  return 0;
}

TEST(set_get_delete) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  char v[1200];
  size_t n = artifact(v, sizeof v, 1);
  OK(nexxo_cache_set(c, "transform", K("src/a.ts"), (const uint8_t *)v, n));
  CHECK(get_equals(c, "transform", "src/a.ts", v, n));
  CHECK(is_miss(c, "transform", "src/b.ts"));
  CHECK(is_miss(c, "parse", "src/a.ts")); /* categories are separate namespaces */
  OK(nexxo_cache_set(c, "transform", K("src/a.ts"), (const uint8_t *)"short", 5));
  CHECK(get_equals(c, "transform", "src/a.ts", "short", 5));
  OK(nexxo_cache_delete(c, "transform", K("src/a.ts")));
  CHECK(is_miss(c, "transform", "src/a.ts"));
  OK(nexxo_cache_delete(c, "transform", K("src/a.ts"))); /* absent: still OK */
  /* Empty values, with and without a pointer. */
  OK(nexxo_cache_set(c, "meta", K("empty"), NULL, 0));
  CHECK(get_equals(c, "meta", "empty", "", 0));
  OK(nexxo_cache_set(c, "meta", K("empty2"), (const uint8_t *)"x", 0));
  CHECK(get_equals(c, "meta", "empty2", "", 0));
  /* Binary keys with embedded NULs. */
  const uint8_t k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'};
  OK(nexxo_cache_set(c, "bundle", k1, 3, (const uint8_t *)"one", 3));
  OK(nexxo_cache_set(c, "bundle", k2, 3, (const uint8_t *)"two", 3));
  nexxo_bytes b = {NULL, 0};
  OK(nexxo_cache_get(c, "bundle", k1, 3, &b));
  CHECK(b.len == 3 && memcmp(b.data, "one", 3) == 0);
  nexxo_bytes_free(&b);
  CHECK(b.data == NULL && b.len == 0);
  nexxo_bytes_free(&b); /* second free is harmless */
  nexxo_bytes_free(NULL);
  nexxo_cache_close(c);
  return 0;
}

TEST(argument_errors) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  nexxo_bytes b = {NULL, 0};
  static uint8_t big_key[NEXXO_MAX_KEY_LEN + 1];
  memset(big_key, 'k', sizeof big_key);
  CHECK_ST(nexxo_cache_set(c, "parse", NULL, 0, (const uint8_t *)"v", 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set(c, "parse", (const uint8_t *)"k", 0, (const uint8_t *)"v", 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set(c, "parse", NULL, 5, (const uint8_t *)"v", 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set(c, "parse", K("k"), NULL, 5), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set(c, NULL, K("k"), (const uint8_t *)"v", 1), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_cache_set(c, "parse", big_key, NEXXO_MAX_KEY_LEN, (const uint8_t *)"v", 1));
  CHECK_ST(nexxo_cache_set(c, "parse", big_key, NEXXO_MAX_KEY_LEN + 1, (const uint8_t *)"v", 1), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_set(c, "parse", big_key, SIZE_MAX, (const uint8_t *)"v", 1), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"v", (size_t)NEXXO_MAX_VALUE_LEN + 1), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"v", SIZE_MAX), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_get(c, "parse", big_key, SIZE_MAX, &b), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_get(c, "parse", K("k"), NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_get(c, "parse", NULL, 0, &b), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_get(c, "nope", K("k"), &b), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_get(c, "", K("k"), &b), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_get(c, "\xff\xfe", K("k"), &b), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_set(c, "PARSE", K("k"), (const uint8_t *)"v", 1), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_delete(c, "nope", K("k")), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_delete(c, "parse", NULL, 0), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_compact(c, "nope"), NEXXO_UNKNOWN_CATEGORY);
  nexxo_stats st;
  CHECK_ST(nexxo_cache_category_stats(c, "nope", &st), NEXXO_UNKNOWN_CATEGORY);
  CHECK_ST(nexxo_cache_category_stats(c, NULL, &st), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_category_stats(c, "parse", NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_stats(c, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_stats_json(c, NULL), NEXXO_INVALID_ARGUMENT);
  const char *bad[] = {"parse", NULL};
  CHECK_ST(nexxo_cache_clear(c, bad, 2), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_clear(c, NULL, 1), NEXXO_INVALID_ARGUMENT);
  const char *unknown[] = {"parse", "nope"};
  CHECK_ST(nexxo_cache_clear(c, unknown, 2), NEXXO_UNKNOWN_CATEGORY);
  /* Nothing above removed the valid entry. */
  OK(nexxo_cache_get(c, "parse", big_key, NEXXO_MAX_KEY_LEN, &b));
  CHECK(b.len == 1 && b.data[0] == 'v');
  nexxo_bytes_free(&b);
  nexxo_cache_close(c);
  return 0;
}

TEST(get_into_buffer_sizes) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  char v[1200];
  size_t n = artifact(v, sizeof v, 2);
  OK(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)v, n));
  uint8_t buf[2048];
  size_t len = 0;
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("k"), buf, 10, &len), NEXXO_BUFFER_TOO_SMALL);
  CHECK(len == n);
  len = 0;
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("k"), NULL, 0, &len), NEXXO_BUFFER_TOO_SMALL);
  CHECK(len == n);
  len = 0;
  OK(nexxo_cache_get_into(c, "parse", K("k"), buf, sizeof buf, &len));
  CHECK(len == n && memcmp(buf, v, n) == 0);
  len = 99;
  OK(nexxo_cache_get_into(c, "parse", K("k"), buf, n, &len));
  CHECK(len == n);
  len = 99;
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("absent"), buf, sizeof buf, &len), NEXXO_NOT_FOUND);
  CHECK(len == 99); /* untouched */
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("k"), buf, sizeof buf, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("k"), NULL, 10, &len), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_get_into(c, "parse", K("k"), buf, SIZE_MAX, &len), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_cache_set(c, "parse", K("e"), NULL, 0));
  OK(nexxo_cache_get_into(c, "parse", K("e"), NULL, 0, &len));
  CHECK(len == 0);
  nexxo_cache_close(c);
  return 0;
}

TEST(batch_set_is_validated_whole) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  nexxo_entry e[3] = {
      {"parse", (const uint8_t *)"a", 1, (const uint8_t *)"A", 1},
      {"transform", (const uint8_t *)"b", 1, (const uint8_t *)"B", 1},
      {"nope", (const uint8_t *)"c", 1, (const uint8_t *)"C", 1},
  };
  CHECK_ST(nexxo_cache_batch_set(c, e, 3), NEXXO_UNKNOWN_CATEGORY);
  CHECK(is_miss(c, "parse", "a") && is_miss(c, "transform", "b"));
  e[2].category = "bundle";
  e[2].key_len = 0;
  CHECK_ST(nexxo_cache_batch_set(c, e, 3), NEXXO_INVALID_ARGUMENT);
  e[2].key_len = 1;
  e[2].value = NULL;
  CHECK_ST(nexxo_cache_batch_set(c, e, 3), NEXXO_INVALID_ARGUMENT);
  e[2].category = NULL;
  e[2].value = (const uint8_t *)"C";
  CHECK_ST(nexxo_cache_batch_set(c, e, 3), NEXXO_INVALID_ARGUMENT);
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 0 && st.writes == 0);
  e[2].category = "bundle";
  OK(nexxo_cache_batch_set(c, e, 3));
  CHECK(get_equals(c, "parse", "a", "A", 1) && get_equals(c, "transform", "b", "B", 1) && get_equals(c, "bundle", "c", "C", 1));
  OK(nexxo_cache_batch_set(c, NULL, 0));
  CHECK_ST(nexxo_cache_batch_set(c, NULL, 2), NEXXO_INVALID_ARGUMENT);
  /* The same key twice: the later value wins and is counted once. */
  nexxo_entry d[2] = {
      {"meta", (const uint8_t *)"k", 1, (const uint8_t *)"first", 5},
      {"meta", (const uint8_t *)"k", 1, (const uint8_t *)"second!", 7},
  };
  OK(nexxo_cache_batch_set(c, d, 2));
  CHECK(get_equals(c, "meta", "k", "second!", 7));
  OK(nexxo_cache_category_stats(c, "meta", &st));
  CHECK(st.entries == 1 && st.logical_bytes == 1 + 7);
  nexxo_cache_close(c);
  return 0;
}

TEST(batch_get_statuses) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  OK(nexxo_cache_set(c, "parse", K("a"), (const uint8_t *)"A", 1));
  OK(nexxo_cache_set(c, "bundle", K("b"), (const uint8_t *)"BB", 2));
  nexxo_key keys[5] = {
      {"parse", (const uint8_t *)"a", 1},
      {"parse", (const uint8_t *)"missing", 7},
      {"bundle", (const uint8_t *)"b", 1},
      {"nope", (const uint8_t *)"a", 1},
      {"parse", NULL, 0},
  };
  nexxo_bytes vals[5];
  nexxo_status sts[5];
  OK(nexxo_cache_batch_get(c, keys, 5, vals, sts));
  CHECK(sts[0] == NEXXO_OK && vals[0].len == 1 && vals[0].data[0] == 'A');
  CHECK(sts[1] == NEXXO_NOT_FOUND && vals[1].data == NULL);
  CHECK(sts[2] == NEXXO_OK && vals[2].len == 2 && memcmp(vals[2].data, "BB", 2) == 0);
  CHECK(sts[3] == NEXXO_UNKNOWN_CATEGORY && vals[3].data == NULL);
  CHECK(sts[4] == NEXXO_INVALID_ARGUMENT && vals[4].data == NULL);
  for (int i = 0; i < 5; i++) nexxo_bytes_free(&vals[i]);
  OK(nexxo_cache_batch_get(c, NULL, 0, NULL, NULL));
  CHECK_ST(nexxo_cache_batch_get(c, keys, 5, NULL, sts), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_batch_get(c, keys, 5, vals, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_batch_get(c, NULL, 5, vals, sts), NEXXO_INVALID_ARGUMENT);
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.hits == 2 && st.misses == 1);
  nexxo_cache_close(c);
  return 0;
}

/* Exact stats after a mix of sets, overwrites, deletes, batches and clears. */
TEST(stats_exact_after_mixed_ops) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_cache *c = open_or_die(p, NULL);
  char v[1200];
  uint64_t logical = 0, entries = 0;
  for (int i = 0; i < 300; i++) {
    char key[32];
    snprintf(key, sizeof key, "mod/%d.js", i);
    size_t n = artifact(v, sizeof v, i);
    OK(nexxo_cache_set(c, "transform", K(key), (const uint8_t *)v, n));
    logical += strlen(key) + n;
    entries++;
  }
  for (int i = 0; i < 100; i++) { /* overwrite with shorter values */
    char key[32];
    snprintf(key, sizeof key, "mod/%d.js", i);
    size_t n = artifact(v, sizeof v, i);
    OK(nexxo_cache_set(c, "transform", K(key), (const uint8_t *)"x", 1));
    logical -= n;
    logical += 1;
  }
  for (int i = 100; i < 150; i++) {
    char key[32];
    snprintf(key, sizeof key, "mod/%d.js", i);
    size_t n = artifact(v, sizeof v, i);
    OK(nexxo_cache_delete(c, "transform", K(key)));
    logical -= strlen(key) + n;
    entries--;
  }
  nexxo_entry batch[10];
  char keys[10][16];
  for (int i = 0; i < 10; i++) {
    snprintf(keys[i], sizeof keys[i], "b%d", i);
    batch[i] = (nexxo_entry){"parse", (const uint8_t *)keys[i], strlen(keys[i]), (const uint8_t *)"ast", 3};
    logical += strlen(keys[i]) + 3;
    entries++;
  }
  OK(nexxo_cache_batch_set(c, batch, 10));
  OK(nexxo_cache_set(c, "bundle", K("gone"), (const uint8_t *)"soon", 4));
  const char *clear[] = {"bundle"};
  OK(nexxo_cache_clear(c, clear, 1));

  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == entries);
  CHECK(st.logical_bytes == logical);
  CHECK(st.stored_bytes > 0 && st.stored_bytes < st.logical_bytes); /* text compresses */
  CHECK(st.disk_bytes > 0);
  CHECK(st.writes == 300 + 100 + 10 + 1 && st.deletes == 50);
  CHECK(!st.read_only && !st.disabled && st.disabled_reason == NEXXO_OK && !st.recovered);
  nexxo_stats t, pst;
  OK(nexxo_cache_category_stats(c, "transform", &t));
  OK(nexxo_cache_category_stats(c, "parse", &pst));
  CHECK(t.entries + pst.entries == st.entries);
  CHECK(t.stored_bytes + pst.stored_bytes == st.stored_bytes);
  uint64_t stored = st.stored_bytes;
  nexxo_cache_close(c);

  c = open_or_die(p, NULL); /* exact across reopen */
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == entries && st.logical_bytes == logical && st.stored_bytes == stored);
  CHECK(st.hits == 0 && st.writes == 0); /* per-handle counters start again */
  nexxo_cache_close(c);
  return 0;
}

TEST(reopen_persistence) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_add_category(o, "lint"));
  nexxo_cache *c = open_or_die(p, o);
  char v[1200];
  for (int i = 0; i < 1000; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%d", i);
    size_t n = artifact(v, sizeof v, i);
    OK(nexxo_cache_set(c, i % 2 ? "lint" : "optimize", K(key), (const uint8_t *)v, n));
  }
  nexxo_cache_close(c);
  nexxo_options_free(o);
  c = open_or_die(p, NULL); /* the custom category persists without being named */
  for (int i = 0; i < 1000; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%d", i);
    size_t n = artifact(v, sizeof v, i);
    CHECK(get_equals(c, i % 2 ? "lint" : "optimize", key, v, n));
  }
  nexxo_stats st;
  OK(nexxo_cache_category_stats(c, "lint", &st));
  CHECK(st.entries == 500);
  nexxo_cache_close(c);
  return 0;
}

/* nexxo_cache_stats_json's text as a NUL-terminated string (free it), or NULL. */
static char *stats_json_of(nexxo_cache *c) {
  nexxo_bytes b = {NULL, 0};
  if (nexxo_cache_stats_json(c, &b) != NEXXO_OK) return NULL;
  char *s = malloc(b.len + 1);
  memcpy(s, b.data, b.len);
  s[b.len] = 0;
  nexxo_bytes_free(&b);
  return s;
}

TEST(stats_json) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  OK(nexxo_cache_set(c, "parse", K("a"), (const uint8_t *)"A", 1));
  char *s = stats_json_of(c);
  CHECK(s != NULL && strlen(s) > 0);
  CHECK(strstr(s, "\"totals\":{") != NULL);
  CHECK(strstr(s, "\"parse\":{") && strstr(s, "\"meta\":{") && strstr(s, "\"entries\":1"));
  CHECK(s[0] == '{' && s[strlen(s) - 1] == '}');
  free(s);
  nexxo_cache_close(c);
  return 0;
}

/* 1.7: stats_json's "latency" (this handle's histograms) and "history" (what closed
 * writable handles kept); nexxo_options_set_latency(false) records none. */
TEST(latency_in_stats_json) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_ignore_environment(o, true));
  nexxo_cache *c = open_or_die(p, o);
  OK(nexxo_cache_set(c, "parse", K("a"), (const uint8_t *)"A", 1));
  OK(nexxo_cache_set(c, "parse", K("b"), (const uint8_t *)"B", 1));
  char *s = stats_json_of(c);
  CHECK(s && strstr(s, "\"latency\":{\"enabled\":true,\"get_sample\":16,\"ops\":{\"get\":{"));
  CHECK(strstr(s, "\"set\":{\"count\":2,") && strstr(s, "\"categories\":{\"parse\":{\"count\":2,"));
  CHECK(strstr(s, "\"history\":{\"since\":0,\"handles\":0,"));
  free(s);
  nexxo_cache_close(c);
  CHECK_ST(nexxo_options_set_latency(NULL, false), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_latency(o, false));
  c = open_or_die(p, o);
  nexxo_options_free(o);
  OK(nexxo_cache_set(c, "parse", K("c"), (const uint8_t *)"C", 1));
  s = stats_json_of(c);
  CHECK(s && strstr(s, "\"latency\":{\"enabled\":false}"));
  /* The first handle's close kept its two sets. */
  CHECK(strstr(s, "\"handles\":1,\"counts\":{") && strstr(s, "\"writes\":2,"));
  free(s);
  nexxo_cache_close(c);
  return 0;
}

/* 1.7: tagged writes and nexxo_cache_invalidate. */
TEST(tags_set_and_invalidate) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  const nexxo_tag cfg = {(const uint8_t *)"tsconfig.json#a1", 16}, babel = {(const uint8_t *)"babel@7", 7};
  const nexxo_tag both[] = {cfg, babel};
  OK(nexxo_cache_set_tagged(c, "transform", K("a.ts"), (const uint8_t *)"A", 1, both, 2));
  OK(nexxo_cache_set_tagged(c, "transform", K("b.ts"), (const uint8_t *)"B", 1, &babel, 1));
  OK(nexxo_cache_set_tagged(c, "parse", K("c.ts"), (const uint8_t *)"C", 1, NULL, 0));
  nexxo_entry es[2] = {{"bundle", K("main.js"), (const uint8_t *)"M", 1}, {"optimize", K("main.min.js"), (const uint8_t *)"O", 1}};
  nexxo_tags ts[2] = {{&cfg, 1}, {NULL, 0}};
  OK(nexxo_cache_batch_set_tagged(c, es, ts, 2));
  uint64_t n = 99, bytes = 99;
  OK(nexxo_cache_invalidate(c, cfg.data, cfg.len, &n, &bytes));
  CHECK(n == 2 && bytes > 0);
  CHECK(is_miss(c, "transform", "a.ts") && is_miss(c, "bundle", "main.js"));
  CHECK(get_equals(c, "transform", "b.ts", "B", 1) && get_equals(c, "optimize", "main.min.js", "O", 1));
  /* An untagged overwrite drops the key's tags. */
  OK(nexxo_cache_set(c, "transform", K("b.ts"), (const uint8_t *)"B2", 2));
  OK(nexxo_cache_invalidate(c, babel.data, babel.len, &n, NULL));
  CHECK(n == 0 && get_equals(c, "transform", "b.ts", "B2", 2));
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 3);
  /* Bad tags: nothing written. */
  uint8_t long_tag[NEXXO_MAX_TAG_LEN + 1];
  memset(long_tag, 'x', sizeof long_tag);
  const nexxo_tag empty = {(const uint8_t *)"", 0}, too_long = {long_tag, sizeof long_tag};
  nexxo_tag many[NEXXO_MAX_TAGS + 1];
  for (int i = 0; i <= NEXXO_MAX_TAGS; i++) many[i] = babel;
  CHECK_ST(nexxo_cache_set_tagged(c, "parse", K("x"), (const uint8_t *)"X", 1, &empty, 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set_tagged(c, "parse", K("x"), (const uint8_t *)"X", 1, &too_long, 1), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_set_tagged(c, "parse", K("x"), (const uint8_t *)"X", 1, many, NEXXO_MAX_TAGS + 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_set_tagged(c, "parse", K("x"), (const uint8_t *)"X", 1, NULL, 1), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_batch_set_tagged(c, es, NULL, 2), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_invalidate(c, NULL, 0, NULL, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_invalidate(c, long_tag, sizeof long_tag, NULL, NULL), NEXXO_TOO_LARGE);
  CHECK_ST(nexxo_cache_invalidate(NULL, cfg.data, cfg.len, NULL, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK(is_miss(c, "parse", "x"));
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 3);
  nexxo_cache_close(c);
  return 0;
}

TEST(clear_several_categories) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  const char *cats[] = {"parse", "transform", "bundle", "optimize", "meta"};
  for (int i = 0; i < 5; i++) OK(nexxo_cache_set(c, cats[i], K("k"), (const uint8_t *)"v", 1));
  const char *two[] = {"parse", "bundle"};
  OK(nexxo_cache_clear(c, two, 2));
  CHECK(is_miss(c, "parse", "k") && is_miss(c, "bundle", "k"));
  CHECK(get_equals(c, "transform", "k", "v", 1) && get_equals(c, "meta", "k", "v", 1));
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 3 && st.logical_bytes == 3 * 2);
  OK(nexxo_cache_clear(c, NULL, 0));
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 0 && st.logical_bytes == 0 && st.stored_bytes == 0);
  OK(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"again", 5)); /* usable after clear */
  CHECK(get_equals(c, "parse", "k", "again", 5));
  nexxo_cache_close(c);
  return 0;
}

TEST(compact_flush_enforce) {
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  char v[1200];
  for (int i = 0; i < 2000; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%d", i);
    OK(nexxo_cache_set(c, "bundle", K(key), (const uint8_t *)v, artifact(v, sizeof v, i)));
  }
  OK(nexxo_cache_flush(c));
  OK(nexxo_cache_compact(c, "bundle"));
  OK(nexxo_cache_compact(c, NULL));
  nexxo_policy_report r;
  memset(&r, 0xAB, sizeof r);
  OK(nexxo_cache_enforce_policy(c, &r));
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(r.evicted_entries == 0 && r.evicted_bytes == 0); /* far below the default limit */
  CHECK(r.stored_bytes_before == st.stored_bytes && r.stored_bytes_after == st.stored_bytes);
  OK(nexxo_cache_enforce_policy(c, NULL));
  nexxo_cache_close(c);
  return 0;
}

TEST(read_only_handle) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_read_only(o, true));
  nexxo_cache *c = NULL;
  CHECK_ST(nexxo_cache_open(p, o, &c), NEXXO_IO_ERROR); /* nothing to open yet */
  c = open_or_die(p, NULL);
  OK(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"v", 1));
  nexxo_cache_close(c);
  c = open_or_die(p, o);
  CHECK(get_equals(c, "parse", "k", "v", 1));
  CHECK_ST(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"w", 1), NEXXO_READ_ONLY);
  CHECK_ST(nexxo_cache_delete(c, "parse", K("k")), NEXXO_READ_ONLY);
  nexxo_entry e = {"parse", (const uint8_t *)"k", 1, (const uint8_t *)"w", 1};
  CHECK_ST(nexxo_cache_batch_set(c, &e, 1), NEXXO_READ_ONLY);
  CHECK_ST(nexxo_cache_clear(c, NULL, 0), NEXXO_READ_ONLY);
  CHECK_ST(nexxo_cache_compact(c, NULL), NEXXO_READ_ONLY);
  CHECK_ST(nexxo_cache_flush(c), NEXXO_READ_ONLY);
  CHECK_ST(nexxo_cache_enforce_policy(c, NULL), NEXXO_READ_ONLY);
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.read_only && st.entries == 1);
  nexxo_cache_close(c);
  nexxo_options_free(o);
  return 0;
}

TEST(second_handle_in_process_shares) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_cache *c = open_or_die(p, NULL);
  nexxo_cache *d = open_or_die(p, NULL);
  OK(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"v", 1));
  CHECK(get_equals(d, "parse", "k", "v", 1));
  OK(nexxo_cache_set(d, "parse", K("k2"), (const uint8_t *)"w", 1));
  CHECK(get_equals(c, "parse", "k2", "w", 1));
  nexxo_stats st;
  OK(nexxo_cache_stats(d, &st));
  CHECK(st.entries == 2 && st.hits == 1 && st.writes == 1); /* d's own counts */
  nexxo_cache_close(c); /* d goes on */
  OK(nexxo_cache_set(d, "parse", K("k3"), (const uint8_t *)"x", 1));
  CHECK(get_equals(d, "parse", "k", "v", 1));
  nexxo_cache_close(d);
  d = open_or_die(p, NULL);
  OK(nexxo_cache_stats(d, &st));
  CHECK(st.entries == 3);
  nexxo_cache_close(d);
  return 0;
}

/* A child process opens the cache first; this process opens it too, with default
 * options, and both read and write it: each sees the other's acknowledged writes at
 * once. When the child closes, this handle goes on (it takes the store over). */
TEST(second_process_shares) {
  const char *p = path_in(fresh_dir(), "c");
  int ready[2], done[2], checked[2];
  CHECK(pipe(ready) == 0 && pipe(done) == 0 && pipe(checked) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    nexxo_cache *c = NULL;
    if (nexxo_cache_open(p, NULL, &c) != NEXXO_OK) _exit(3);
    if (nexxo_cache_set(c, "parse", K("from-child"), (const uint8_t *)"hello", 5) != NEXXO_OK) _exit(4);
    if (write(ready[1], "r", 1) != 1) _exit(5);
    char ch;
    if (read(done[0], &ch, 1) != 1) _exit(6);
    if (!get_equals(c, "parse", "from-parent", "world", 5)) _exit(7);
    if (write(checked[1], "c", 1) != 1) _exit(8);
    nexxo_cache_close(c);
    _exit(0);
  }
  char ch;
  CHECK(read(ready[0], &ch, 1) == 1);
  nexxo_cache *c = open_or_die(p, NULL);
  CHECK(get_equals(c, "parse", "from-child", "hello", 5));
  OK(nexxo_cache_set(c, "parse", K("from-parent"), (const uint8_t *)"world", 5));
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(!st.disabled && st.entries == 2 && st.hits == 1 && st.writes == 1);
  CHECK(write(done[1], "d", 1) == 1);
  CHECK(read(checked[0], &ch, 1) == 1);
  /* A read-only handle opened beside still works. */
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_read_only(o, true));
  nexxo_cache *ro = open_or_die(p, o);
  CHECK(get_equals(ro, "parse", "from-child", "hello", 5));
  CHECK_ST(nexxo_cache_set(ro, "parse", K("x"), (const uint8_t *)"v", 1), NEXXO_READ_ONLY);
  nexxo_cache_close(ro);
  nexxo_options_free(o);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* The child closed: this handle goes on. */
  OK(nexxo_cache_set(c, "parse", K("after"), (const uint8_t *)"!", 1));
  CHECK(get_equals(c, "parse", "from-child", "hello", 5));
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == 3);
  nexxo_cache_close(c);
  return 0;
}

/* Whether the first 600 values `child_uses_cache` wrote in `round` read back, in one
 * batch: large enough (2 x 256 keys) to be split across the library's read threads. */
static int child_writes_read_back(nexxo_cache *c, int round) {
  static char names[600][64];
  nexxo_key keys[600];
  nexxo_bytes vals[600];
  nexxo_status sts[600];
  char val[1100];
  for (int i = 0; i < 600; i++) {
    snprintf(names[i], sizeof names[i], "child-%d-%d", round, i);
    keys[i] = (nexxo_key){"transform", (const uint8_t *)names[i], strlen(names[i])};
  }
  if (nexxo_cache_batch_get(c, keys, 600, vals, sts) != NEXXO_OK) return 0;
  int good = 1;
  for (int i = 0; i < 600; i++) {
    size_t len = artifact(val, sizeof val, i);
    good &= sts[i] == NEXXO_OK && vals[i].len == len && memcmp(vals[i].data, val, len) == 0;
    nexxo_bytes_free(&vals[i]);
  }
  return good;
}

/* What a child made by fork() does in it: open, write, read in a batch and close its own
 * handle. `heavy` writes 24 MiB, so the child's store flushes and compacts while it
 * runs. 0 when all went well, else the step that failed. */
static int child_uses_cache(const char *p, int round, int heavy) {
  nexxo_cache *c = NULL;
  if (nexxo_cache_open(p, NULL, &c) != NEXXO_OK) return 10;
  char key[64], val[1100];
  int n = heavy ? 24000 : 600;
  for (int i = 0; i < n; i++) {
    snprintf(key, sizeof key, "child-%d-%d", round, i);
    size_t len = artifact(val, sizeof val, i);
    if (nexxo_cache_set(c, "transform", K(key), (const uint8_t *)val, len) != NEXXO_OK) return 11;
  }
  if (!child_writes_read_back(c, round)) return 12;
  nexxo_cache_close(c);
  return 0;
}

/* Waits up to 30 s for `pid`; a child still running then is killed and counted as hung
 * (returns -1). Otherwise its exit code, or 100 + the signal that ended it. */
static int wait_bounded(pid_t pid) {
  for (int waited_ms = 0; waited_ms < 30000; waited_ms += 5) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
    if (r < 0) return 99;
    usleep(5000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* fork() after the library was used: the child opens, uses and closes handles of its
 * own (RocksDB's default thread pools did not survive the fork: without a pool of the
 * child's own, its close waited forever for a flush), and a handle from before the fork
 * is refused there with NEXXO_INVALID_ARGUMENT, never hangs, and is not closed in the
 * child. NEXXO_FORK_ROUNDS sets the rounds (default 100, 20 under ASan; every tenth child writes 24
 * MiB, and in every third round the parent keeps a handle open across the fork, except
 * under ASan: see FORK_UNSAFE_ALLOCATOR). */
/* AddressSanitizer's allocator (GCC 12's libsanitizer) takes no locks around fork():
 * a child forked while another thread of the parent allocates waits forever for that
 * thread's allocator lock (seen: a child stuck in __asan::Allocator::Allocate). glibc's
 * malloc is fork-safe. Under ASan the cases below fork only while the library's threads
 * are idle. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_UNSAFE_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_UNSAFE_ALLOCATOR 1
#endif
#endif
#ifndef FORK_UNSAFE_ALLOCATOR
#define FORK_UNSAFE_ALLOCATOR 0
#endif

TEST(fork_child_opens_its_own) {
  const char *p = path_in(fresh_dir(), "c");
  const char *env = getenv("NEXXO_FORK_ROUNDS");
  int rounds = env ? atoi(env) : FORK_UNSAFE_ALLOCATOR ? 20 : 100; /* ASan: 5x slower */
  for (int r = 0; r < rounds; r++) {
    nexxo_cache *c = open_or_die(p, NULL);
    char key[32];
    snprintf(key, sizeof key, "parent-%d", r);
    OK(nexxo_cache_set(c, "parse", K(key), (const uint8_t *)"p", 1));
    CHECK(get_equals(c, "parse", key, "p", 1));
    int keep = r % 3 == 2 && !FORK_UNSAFE_ALLOCATOR;
    if (!keep) {
      nexxo_cache_close(c);
      c = NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      if (c != NULL) {
        nexxo_bytes b = {NULL, 0};
        if (nexxo_cache_get(c, "parse", K(key), &b) != NEXXO_INVALID_ARGUMENT) _exit(20);
        if (nexxo_cache_set(c, "parse", K("x"), (const uint8_t *)"x", 1) != NEXXO_INVALID_ARGUMENT) _exit(21);
        nexxo_cache_close(c); /* leaves the parent's store alone */
      }
      _exit(child_uses_cache(p, r, r % 10 == 9));
    }
    int rc = wait_bounded(pid);
    if (rc != 0) {
      fprintf(stderr, "round %d: the child %s (%d)\n", r, rc < 0 ? "hung" : "failed", rc);
      return 1;
    }
    if (c == NULL) c = open_or_die(p, NULL);
    /* The child's writes are there for the parent (a batch: the parent's read threads
     * exist at the next fork). */
    CHECK(child_writes_read_back(c, r));
    CHECK(get_equals(c, "parse", key, "p", 1));
    nexxo_cache_close(c);
    /* And through a read-only handle: a RocksDB instance of its own, whose batch reads
     * go to the store, split across the read threads. */
    nexxo_options *o = nexxo_options_new();
    OK(nexxo_options_set_read_only(o, true));
    c = open_or_die(p, o);
    nexxo_options_free(o);
    CHECK(child_writes_read_back(c, r));
    nexxo_cache_close(c);
  }
  return 0;
}

/* fork() in a process that reaches the cache through another process (the owner): the
 * child's close of the copied handle must not wait for the reader thread that stayed in
 * the parent, nor shut down the parent's connections or remove its reader's files. The
 * parent's handle goes on working after each child. */
TEST(fork_child_of_a_client) {
  if (FORK_UNSAFE_ALLOCATOR) return 77; /* the reader's thread allocates at any time */
  const char *p = path_in(fresh_dir(), "c");
  int ready[2], done[2];
  CHECK(pipe(ready) == 0 && pipe(done) == 0);
  pid_t owner = fork();
  CHECK(owner >= 0);
  if (owner == 0) {
    close(ready[0]);
    close(done[1]); /* so that the test's end (or failure) ends this process too */
    nexxo_cache *o = NULL;
    if (nexxo_cache_open(p, NULL, &o) != NEXXO_OK) _exit(3);
    if (write(ready[1], "r", 1) != 1) _exit(4);
    char ch;
    if (read(done[0], &ch, 1) != 1) _exit(5);
    nexxo_cache_close(o);
    _exit(0);
  }
  close(ready[1]);
  close(done[0]);
  char ch;
  CHECK(read(ready[0], &ch, 1) == 1);
  nexxo_cache *c = open_or_die(p, NULL); /* a client of the owner above */
  char errs[4200];
  snprintf(errs, sizeof errs, "%s", path_in(g_dir, "child-stderr"));
  for (int r = 0; r < 5; r++) {
    char key[32];
    snprintf(key, sizeof key, "parent-%d", r);
    OK(nexxo_cache_set(c, "parse", K(key), (const uint8_t *)"p", 1));
    CHECK(get_equals(c, "parse", key, "p", 1));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      /* Whatever the library says in the child (a caught panic, say) goes to a file. */
      FILE *err = fopen(errs, "w");
      if (err == NULL || dup2(fileno(err), 2) < 0) _exit(19);
      if (nexxo_cache_set(c, "parse", K("x"), (const uint8_t *)"x", 1) != NEXXO_INVALID_ARGUMENT) _exit(20);
      nexxo_cache_close(c);
      _exit(child_uses_cache(p, r, 0));
    }
    int rc = wait_bounded(pid);
    if (rc != 0) {
      fprintf(stderr, "round %d: the child %s (%d)\n", r, rc < 0 ? "hung" : "failed", rc);
      return 1;
    }
    struct stat es;
    CHECK(stat(errs, &es) == 0);
    if (es.st_size != 0) {
      fprintf(stderr, "round %d: the child wrote to stderr (%s)\n", r, errs);
      return 1;
    }
    CHECK(child_writes_read_back(c, r));
    OK(nexxo_cache_set(c, "parse", K("after"), (const uint8_t *)"a", 1));
    CHECK(get_equals(c, "parse", "after", "a", 1));
  }
  CHECK(write(done[1], "d", 1) == 1);
  CHECK(wait_bounded(owner) == 0);
  nexxo_cache_close(c);
  return 0;
}

/* Sets k0..k399 (artifacts of ~1 KiB) in transform, enforces the policy and reads the
 * stats into *st; 1 when every call succeeded. */
static int set_400_then_enforce(nexxo_cache *c, nexxo_stats *st) {
  char key[32], val[1100];
  for (int i = 0; i < 400; i++) {
    snprintf(key, sizeof key, "k%d", i);
    size_t len = artifact(val, sizeof val, i * 7919);
    if (nexxo_cache_set(c, "transform", K(key), (const uint8_t *)val, len) != NEXXO_OK) return 0;
  }
  return nexxo_cache_enforce_policy(c, NULL) == NEXXO_OK && nexxo_cache_stats(c, st) == NEXXO_OK;
}

/* The NEXXO_CACHE_* environment (README "Environment"): read at every open, a limit the
 * options set winning over it; a malformed value fails the open (a disabled cache with
 * the fallback); NEXXO_CACHE_DISABLE gives a disabled cache whose reason is NEXXO_OK;
 * nexxo_options_set_ignore_environment leaves it all out. */
TEST(environment_variables) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_cache *c = NULL;
  nexxo_stats st;
  setenv("NEXXO_CACHE_MAX_SIZE", "lots", 1);
  CHECK_ST(nexxo_cache_open(p, NULL, &c), NEXXO_INVALID_ARGUMENT);
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_fallback_disabled(o, true));
  c = open_or_die(p, o);
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.disabled && st.disabled_reason == NEXXO_INVALID_ARGUMENT);
  nexxo_cache_close(c);
  nexxo_options_free(o);
  o = nexxo_options_new();
  OK(nexxo_options_set_ignore_environment(o, true));
  c = open_or_die(p, o);
  OK(nexxo_cache_stats(c, &st));
  CHECK(!st.disabled);
  nexxo_cache_close(c);
  nexxo_options_free(o);
  CHECK_ST(nexxo_options_set_ignore_environment(NULL, true), NEXXO_INVALID_ARGUMENT);

  /* 64K from the environment bounds the cache (the 2 GiB default does not apply). */
  setenv("NEXXO_CACHE_MAX_SIZE", "64K", 1);
  c = open_or_die(p, NULL);
  CHECK(set_400_then_enforce(c, &st));
  CHECK(st.stored_bytes <= 64 * 1024 && st.entries > 0);
  nexxo_cache_close(c);

  /* A bound the options set wins over the environment's. */
  o = nexxo_options_new();
  OK(nexxo_options_set_max_size(o, 0));
  c = open_or_die(p, o);
  CHECK(set_400_then_enforce(c, &st));
  CHECK(st.entries == 400);
  nexxo_cache_close(c);
  nexxo_options_free(o);
  unsetenv("NEXXO_CACHE_MAX_SIZE");

  /* The memory budget: one under the 4 MiB minimum fails the open, as the option's
   * does; one that can be used opens the cache as before. */
  setenv("NEXXO_CACHE_MEMORY_BUDGET", "1M", 1);
  CHECK_ST(nexxo_cache_open(p, NULL, &c), NEXXO_INVALID_ARGUMENT);
  setenv("NEXXO_CACHE_MEMORY_BUDGET", "256MiB", 1);
  c = open_or_die(p, NULL);
  char budget_val[1100];
  CHECK(get_equals(c, "transform", "k0", budget_val, artifact(budget_val, sizeof budget_val, 0)));
  nexxo_cache_close(c);
  unsetenv("NEXXO_CACHE_MEMORY_BUDGET");

  setenv("NEXXO_CACHE_READ_ONLY", "1", 1);
  c = open_or_die(p, NULL);
  CHECK_ST(nexxo_cache_set(c, "parse", K("x"), (const uint8_t *)"x", 1), NEXXO_READ_ONLY);
  char val[1100];
  CHECK(get_equals(c, "transform", "k0", val, artifact(val, sizeof val, 0)));
  nexxo_cache_close(c);
  unsetenv("NEXXO_CACHE_READ_ONLY");

  setenv("NEXXO_CACHE_DISABLE", "true", 1);
  c = open_or_die(p, NULL);
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.disabled && st.disabled_reason == NEXXO_OK);
  CHECK(is_miss(c, "transform", "k0"));
  OK(nexxo_cache_set(c, "parse", K("x"), (const uint8_t *)"x", 1)); /* dropped */
  nexxo_cache_close(c);
  setenv("NEXXO_CACHE_DISABLE", "perhaps", 1);
  CHECK_ST(nexxo_cache_open(p, NULL, &c), NEXXO_INVALID_ARGUMENT);
  unsetenv("NEXXO_CACHE_DISABLE");
  c = open_or_die(p, NULL);
  CHECK(is_miss(c, "parse", "x"));
  nexxo_cache_close(c);
  return 0;
}

TEST(fallback_on_bad_path) {
  const char *d = fresh_dir();
  const char *f = path_in(d, "file");
  FILE *fp = fopen(f, "w");
  CHECK(fp != NULL);
  fclose(fp);
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_fallback_disabled(o, true));
  nexxo_cache *c = open_or_die(f, o);
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.disabled && st.disabled_reason == NEXXO_IO_ERROR);
  nexxo_bytes b = {NULL, 0};
  OK(nexxo_cache_stats_json(c, &b));
  CHECK(b.len > 0 && memmem(b.data, b.len, "NEXXO_IO_ERROR", 14) != NULL);
  nexxo_bytes_free(&b);
  OK(nexxo_cache_enforce_policy(c, NULL));
  OK(nexxo_cache_flush(c));
  nexxo_cache_close(c);
  nexxo_options_free(o);
  return 0;
}

TEST(foreign_directories_are_left_alone) {
  const char *d = fresh_dir();
  /* A newer on-disk format. */
  const char *p = path_in(d, "newer");
  mkdir(p, 0700);
  FILE *fp = fopen(path_in(p, "NEXXO_FORMAT"), "w");
  CHECK(fp != NULL);
  fputs("nexxo-cache format 99\n", fp);
  fclose(fp);
  nexxo_cache *c = NULL;
  CHECK_ST(nexxo_cache_open(p, NULL, &c), NEXXO_INCOMPATIBLE);
  /* A directory of someone else's files. */
  const char *q = path_in(d, "src");
  mkdir(q, 0700);
  fp = fopen(path_in(q, "index.js"), "w");
  CHECK(fp != NULL);
  fclose(fp);
  CHECK_ST(nexxo_cache_open(q, NULL, &c), NEXXO_INCOMPATIBLE);
  struct stat st;
  CHECK(stat(path_in(q, "CURRENT"), &st) != 0); /* nothing was written there */
  return 0;
}

struct worker {
  nexxo_cache *c;
  int id;
  int failures;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  char v[1200], key[48];
  for (int i = 0; i < 2000; i++) {
    snprintf(key, sizeof key, "t%d/k%d", w->id, i % 500);
    size_t n = artifact(v, sizeof v, i);
    if (nexxo_cache_set(w->c, "transform", (const uint8_t *)key, strlen(key), (const uint8_t *)v, n) != NEXXO_OK)
      w->failures++;
    nexxo_bytes b = {NULL, 0};
    if (nexxo_cache_get(w->c, "transform", (const uint8_t *)key, strlen(key), &b) != NEXXO_OK || b.len != n ||
        memcmp(b.data, v, n) != 0)
      w->failures++;
    nexxo_bytes_free(&b);
    if (i % 7 == 0 && nexxo_cache_delete(w->c, "transform", (const uint8_t *)key, strlen(key)) != NEXXO_OK)
      w->failures++;
  }
  return NULL;
}

TEST(concurrent_threads) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_cache *c = open_or_die(p, NULL);
  enum { N = 4 };
  pthread_t t[N];
  struct worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (struct worker){c, i, 0};
    CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    CHECK(w[i].failures == 0);
  }
  /* Recount: every key that exists now, by reading all candidates. */
  uint64_t entries = 0, logical = 0;
  for (int id = 0; id < N; id++) {
    for (int k = 0; k < 500; k++) {
      char key[48];
      snprintf(key, sizeof key, "t%d/k%d", id, k);
      nexxo_bytes b = {NULL, 0};
      nexxo_status s = nexxo_cache_get(c, "transform", (const uint8_t *)key, strlen(key), &b);
      CHECK(s == NEXXO_OK || s == NEXXO_NOT_FOUND);
      if (s == NEXXO_OK) {
        entries++;
        logical += strlen(key) + b.len;
      }
      nexxo_bytes_free(&b);
    }
  }
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == entries && st.logical_bytes == logical);
  CHECK(st.writes == N * 2000);
  nexxo_cache_close(c);
  return 0;
}


TEST(untrusted_directories) {
  const char *p = path_in(fresh_dir(), "c");
  nexxo_cache *c = open_or_die(p, NULL);
  OK(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"v", 1));
  nexxo_cache_close(c);
  CHECK(chmod(p, 0777) == 0);
  c = NULL;
  CHECK_ST(nexxo_cache_open(p, NULL, &c), NEXXO_INSECURE);
  CHECK(c == NULL);
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_allow_untrusted_dir(o, true));
  c = open_or_die(p, o);
  CHECK(get_equals(c, "parse", "k", "v", 1));
  CHECK_ST(nexxo_cache_set(c, "parse", K("k"), (const uint8_t *)"poison", 6), NEXXO_READ_ONLY);
  nexxo_cache_close(c);
  nexxo_options_free(o);
  o = nexxo_options_new();
  CHECK_ST(nexxo_options_set_dir_mode(o, 0600), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_dir_mode(o, 01777), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_dir_mode(NULL, 0700), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_allow_untrusted_dir(NULL, true), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_dir_mode(o, 0777));
  c = open_or_die(p, o); /* a mode that grants everyone write access accepts it */
  nexxo_cache_close(c);
  nexxo_options_free(o);
  return 0;
}

/* ---- eviction policy, through the C ABI ---- */

static void noise(uint8_t *buf, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
}

/* Cap 8 MiB; 32 MiB written while a 1 MiB hot set is read throughout. */
TEST(policy_cap_keeps_hot_set) {
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_max_size(o, 8u << 20));
  OK(nexxo_options_set_compression(o, NEXXO_COMPRESSION_NONE));
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), o);
  nexxo_options_free(o);
  enum { VLEN = 4096, HOT = 256, COLD = (32 << 20) / VLEN };
  static uint8_t v[VLEN], got[VLEN];
  char key[32];
  for (int i = 0; i < HOT; i++) {
    snprintf(key, sizeof key, "hot/%d", i);
    noise(v, VLEN, (uint64_t)i);
    OK(nexxo_cache_set(c, "transform", K(key), v, VLEN));
  }
  nexxo_stats st;
  for (int i = 0; i < COLD; i++) {
    snprintf(key, sizeof key, "cold/%d", i);
    noise(v, VLEN, 1000000u + (uint64_t)i);
    OK(nexxo_cache_set(c, "bundle", K(key), v, VLEN));
    OK(nexxo_cache_stats(c, &st));
    CHECK(st.stored_bytes <= (8u << 20) + (2u << 20) + VLEN + 64); /* never more than 25% over */
    if (i % 64 == 0) {
      for (int j = 0; j < HOT; j++) {
        size_t n = 0;
        snprintf(key, sizeof key, "hot/%d", j);
        noise(v, VLEN, (uint64_t)j);
        OK(nexxo_cache_get_into(c, "transform", K(key), got, VLEN, &n));
        CHECK(n == VLEN && memcmp(got, v, VLEN) == 0);
      }
    }
  }
  nexxo_policy_report r;
  OK(nexxo_cache_enforce_policy(c, &r));
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.stored_bytes <= 8u << 20);
  /* The report is the store when enforce_policy ended; a pass of the background evictor
   * (woken by the sets above) may still remove entries after it (seen once in CI with an
   * exact comparison), never add any. */
  CHECK(r.stored_bytes_after <= 8u << 20);
  CHECK(st.stored_bytes <= r.stored_bytes_after);
  CHECK(st.evictions > 0);
  for (int j = 0; j < HOT; j++) {
    size_t n = 0;
    snprintf(key, sizeof key, "hot/%d", j);
    OK(nexxo_cache_get_into(c, "transform", K(key), got, VLEN, &n));
  }
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "cold/%d", i);
    CHECK(is_miss(c, "bundle", key));
  }
  /* A recount through the API equals the stats. */
  uint64_t entries = 0, logical = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < (pass ? COLD : HOT); i++) {
      size_t n = 0;
      snprintf(key, sizeof key, pass ? "cold/%d" : "hot/%d", i);
      if (nexxo_cache_get_into(c, pass ? "bundle" : "transform", K(key), got, VLEN, &n) == NEXXO_OK) {
        entries++;
        logical += strlen(key) + n;
      }
    }
  }
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.entries == entries && st.logical_bytes == logical);
  OK(nexxo_cache_compact(c, NULL));
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.disk_bytes <= 2 * (8u << 20));
  nexxo_cache_close(c);
  return 0;
}

TEST(policy_category_limit) {
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_category_max_size(o, "transform", 1u << 20));
  OK(nexxo_options_set_compression(o, NEXXO_COMPRESSION_NONE));
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), o);
  nexxo_options_free(o);
  static uint8_t v[4096];
  char key[32];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "p%d", i);
    noise(v, sizeof v, (uint64_t)i);
    OK(nexxo_cache_set(c, "parse", K(key), v, sizeof v));
  }
  for (int i = 0; i < 1024; i++) {
    snprintf(key, sizeof key, "t%d", i);
    noise(v, sizeof v, 5000u + (uint64_t)i);
    OK(nexxo_cache_set(c, "transform", K(key), v, sizeof v));
  }
  OK(nexxo_cache_enforce_policy(c, NULL));
  nexxo_stats t, p;
  OK(nexxo_cache_category_stats(c, "transform", &t));
  OK(nexxo_cache_category_stats(c, "parse", &p));
  CHECK(t.stored_bytes <= 1u << 20 && t.evictions > 0);
  CHECK(p.entries == 100 && p.evictions == 0);
  CHECK(is_miss(c, "transform", "t0"));
  nexxo_cache_close(c);
  return 0;
}

static uint64_t g_now = 1000;
static uint64_t test_clock(void *ctx) {
  return *(uint64_t *)ctx;
}

TEST(policy_max_age_with_clock) {
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_set_max_age(o, 100));
  OK(nexxo_options_set_clock(o, test_clock, &g_now));
  CHECK_ST(nexxo_options_set_clock(NULL, test_clock, &g_now), NEXXO_INVALID_ARGUMENT);
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), o);
  nexxo_options_free(o);
  char key[32];
  OK(nexxo_cache_set(c, "parse", K("old"), (const uint8_t *)"v", 1));
  OK(nexxo_cache_set(c, "parse", K("keep"), (const uint8_t *)"v", 1));
  for (uint64_t t = 1000; t < 1300; t += 10) {
    g_now = t;
    snprintf(key, sizeof key, "f%llu", (unsigned long long)t);
    OK(nexxo_cache_set(c, "meta", K(key), (const uint8_t *)"x", 1));
    if (t == 1250) CHECK(get_equals(c, "parse", "keep", "v", 1));
  }
  g_now = 1300;
  nexxo_policy_report r;
  OK(nexxo_cache_enforce_policy(c, &r));
  CHECK(r.evicted_entries > 0);
  CHECK(is_miss(c, "parse", "old"));
  CHECK(get_equals(c, "parse", "keep", "v", 1));
  CHECK(is_miss(c, "meta", "f1050"));
  CHECK(get_equals(c, "meta", "f1290", "x", 1));
  nexxo_cache_close(c);
  return 0;
}

/* A batch large enough to be split across threads: every answer in its place. */
TEST(batch_get_many) {
  enum { N = 3000 };
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), NULL);
  static char keys[N][24];
  static nexxo_key ks[N];
  static nexxo_bytes vals[N];
  static nexxo_status sts[N];
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    if (i % 3 != 0) OK(nexxo_cache_set(c, i % 2 ? "parse" : "bundle", K(keys[i]), (const uint8_t *)keys[i], strlen(keys[i])));
    ks[i] = (nexxo_key){i % 2 ? "parse" : "bundle", (const uint8_t *)keys[i], strlen(keys[i])};
  }
  ks[1234].category = "nope";
  OK(nexxo_cache_batch_get(c, ks, N, vals, sts));
  for (int i = 0; i < N; i++) {
    if (i == 1234) {
      CHECK(sts[i] == NEXXO_UNKNOWN_CATEGORY && vals[i].data == NULL);
    } else if (i % 3 == 0) {
      CHECK(sts[i] == NEXXO_NOT_FOUND && vals[i].data == NULL && vals[i].len == 0);
    } else {
      CHECK(sts[i] == NEXXO_OK && vals[i].len == strlen(keys[i]) && memcmp(vals[i].data, keys[i], vals[i].len) == 0);
    }
    nexxo_bytes_free(&vals[i]);
  }
  nexxo_stats st;
  OK(nexxo_cache_stats(c, &st));
  CHECK(st.hits == 1999 && st.misses == 1000);
  nexxo_cache_close(c);
  return 0;
}

TEST(remote_options) {
  nexxo_options *o = nexxo_options_new();
  CHECK(o != NULL);
  CHECK_ST(nexxo_options_add_remote(NULL, "http://x"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_remote(o, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_remote(o, "ftp://cache.example"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_remote(o, "redis://x/not-a-db"), NEXXO_INVALID_ARGUMENT);
  /* 1.5: TLS addresses, tokens, headers and an extra CA file. */
  {
    nexxo_options *t = nexxo_options_new();
    OK(nexxo_options_add_remote(t, "https://cache.example/v1"));
    OK(nexxo_options_add_remote(t, "rediss://:pw@cache.example:6380/2"));
    CHECK_ST(nexxo_options_set_remote_token(NULL, "t"), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_set_remote_token(t, "has space"), NEXXO_INVALID_ARGUMENT);
    OK(nexxo_options_set_remote_token(t, "tok3n"));
    OK(nexxo_options_set_remote_token(t, NULL));
    CHECK_ST(nexxo_options_add_remote_header(t, NULL, "v"), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_add_remote_header(t, "X-A", NULL), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_add_remote_header(t, "Host", "x"), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_add_remote_header(t, "X-A", "a\r\nInjected: 1"), NEXXO_INVALID_ARGUMENT);
    OK(nexxo_options_add_remote_header(t, "X-Team", "build infra"));
    CHECK_ST(nexxo_options_set_remote_ca_file(t, "/nonexistent/ca.pem"), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_set_remote_ca_file(t, "/etc/hostname"), NEXXO_INVALID_ARGUMENT);
    OK(nexxo_options_set_remote_ca_file(t, NULL));
    CHECK_ST(nexxo_options_set_remote_proxy(t, "socks5://127.0.0.1:1080"), NEXXO_INVALID_ARGUMENT);
    CHECK_ST(nexxo_options_set_remote_proxy(t, "https://proxy:443"), NEXXO_INVALID_ARGUMENT);
    OK(nexxo_options_set_remote_proxy(t, "http://u:p@proxy.corp:3128"));
    OK(nexxo_options_set_remote_proxy(t, ""));
    OK(nexxo_options_set_remote_proxy(t, NULL));
    CHECK_ST(nexxo_options_set_remote_check_exists(NULL, true), NEXXO_INVALID_ARGUMENT);
    OK(nexxo_options_set_remote_check_exists(t, true));
    nexxo_options_free(t);
  }
  CHECK_ST(nexxo_options_add_remote(o, "http://\xff\xfe/"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_add_remote(o, ""), NEXXO_INVALID_ARGUMENT);
  /* Port 9 (discard) on loopback: nothing listens, connections are refused. */
  OK(nexxo_options_add_remote(o, "http://127.0.0.1:9/cache"));
  CHECK_ST(nexxo_options_set_remote_mode(o, (nexxo_remote_mode)3), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_remote_mode(NULL, NEXXO_REMOTE_OFF), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_remote_mode(o, NEXXO_REMOTE_READ_WRITE));
  CHECK_ST(nexxo_options_set_remote_hmac_key(o, K("too short")), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_remote_hmac_key(o, NULL, 16), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_remote_hmac_key(o, K("sixteen bytes ok")));
  OK(nexxo_options_set_remote_hmac_key(o, NULL, 0));
  CHECK_ST(nexxo_options_set_remote_name(o, "has space"), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_remote_name(o, NULL), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_remote_name(o, "app.v2"));
  CHECK_ST(nexxo_options_set_remote_local_only(o, "nope", true), NEXXO_UNKNOWN_CATEGORY);
  OK(nexxo_options_set_remote_local_only(o, "meta", true));
  CHECK_ST(nexxo_options_set_remote_timeout(o, 0), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_options_set_remote_timeout(o, 600001), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_remote_timeout(o, 500));
  CHECK_ST(nexxo_options_set_remote_retries(o, 11), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_options_set_remote_retries(o, 0));
  OK(nexxo_options_set_remote_cooldown(o, 60000));
  OK(nexxo_options_set_remote_ttl(o, 3600));
  OK(nexxo_options_set_remote_queue(o, 1 << 20, 200));

  /* A dead remote costs nothing but counts: open, misses and writes all succeed. */
  nexxo_cache *c = open_or_die(path_in(fresh_dir(), "c"), o);
  nexxo_options_free(o);
  CHECK(is_miss(c, "parse", "k"));
  OK(nexxo_cache_set(c, "parse", K("k"), K("local value")));
  CHECK(get_equals(c, "parse", "k", "local value", 11));
  OK(nexxo_cache_remote_sync(c, 5000));
  nexxo_remote_stats r;
  CHECK_ST(nexxo_cache_remote_stats(NULL, &r), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_remote_stats(c, NULL), NEXXO_INVALID_ARGUMENT);
  CHECK_ST(nexxo_cache_remote_sync(NULL, 0), NEXXO_INVALID_ARGUMENT);
  OK(nexxo_cache_remote_stats(c, &r));
  CHECK(r.remotes == 1 && r.errors == 1 && r.open_breakers == 1);
  CHECK(r.hits == 0 && r.uploads == 0 && r.skipped == 1 && r.queued == 0);
  nexxo_bytes j = {NULL, 0};
  OK(nexxo_cache_stats_json(c, &j));
  CHECK(memmem(j.data, j.len, "\"breaker\":\"open\"", 16) != NULL);
  nexxo_bytes_free(&j);
  nexxo_cache_close(c);

  /* Without remotes: all zero, and nothing to wait for. */
  c = open_or_die(path_in(g_dir, "plain"), NULL);
  OK(nexxo_cache_remote_stats(c, &r));
  CHECK(r.remotes == 0 && r.gets == 0);
  OK(nexxo_cache_remote_sync(c, 0));
  nexxo_cache_close(c);
  return 0;
}

/* The server named by an environment variable (scripts/servers.sh starts them for the
 * test command). Missing: the case is skipped (77), unless CI is set. */
static const char *server_url(const char *var, int *skip) {
  const char *u = getenv(var);
  if (u && *u) return u;
  fprintf(stderr, "%s is not set: start servers with scripts/servers.sh\n", var);
  *skip = getenv("CI") ? 1 : 77;
  return NULL;
}

static int remote_round_trip(const char *url) {
  char name[64];
  snprintf(name, sizeof name, "c-test-%ld-%d", (long)getpid(), rand());
  const char *dir = fresh_dir();
  char buf[1100];
  enum { N = 200 };
  nexxo_options *o = nexxo_options_new();
  OK(nexxo_options_add_remote(o, url));
  OK(nexxo_options_set_remote_name(o, name));
  OK(nexxo_options_set_remote_hmac_key(o, K("a shared CI key of 32 bytes.....")));
  nexxo_cache *a = open_or_die(path_in(dir, "a"), o);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "mod-%d", i);
    size_t n = artifact(buf, sizeof buf, i);
    OK(nexxo_cache_set(a, i % 2 ? "transform" : "bundle", K(key), (const uint8_t *)buf, n));
  }
  OK(nexxo_cache_remote_sync(a, 30000));
  nexxo_remote_stats r;
  OK(nexxo_cache_remote_stats(a, &r));
  CHECK(r.uploads == N && r.upload_errors == 0 && r.upload_dropped == 0 && r.bytes_up > 0);
  nexxo_cache_close(a);

  /* A second machine: an empty local cache, every read served by the remote once. */
  nexxo_cache *b = open_or_die(path_in(dir, "b"), o);
  nexxo_options_free(o);
  nexxo_key keys[N];
  char key_text[N][32];
  nexxo_bytes vals[N];
  nexxo_status sts[N];
  for (int i = 0; i < N; i++) {
    snprintf(key_text[i], sizeof key_text[i], "mod-%d", i);
    keys[i] = (nexxo_key){i % 2 ? "transform" : "bundle", (const uint8_t *)key_text[i], strlen(key_text[i])};
  }
  OK(nexxo_cache_batch_get(b, keys, N, vals, sts));
  for (int i = 0; i < N; i++) {
    size_t n = artifact(buf, sizeof buf, i);
    CHECK(sts[i] == NEXXO_OK && vals[i].len == n && memcmp(vals[i].data, buf, n) == 0);
    nexxo_bytes_free(&vals[i]);
  }
  OK(nexxo_cache_remote_stats(b, &r));
  CHECK(r.hits == N && r.backfills == N && r.rejected == 0 && r.gets == N && r.get_mean_us > 0);
  nexxo_stats st;
  OK(nexxo_cache_stats(b, &st));
  CHECK(st.entries == N);
  /* Local now: the remote is not asked again. */
  size_t n = artifact(buf, sizeof buf, 7);
  CHECK(get_equals(b, "transform", "mod-7", buf, n));
  OK(nexxo_cache_remote_stats(b, &r));
  CHECK(r.gets == N);
  nexxo_cache_close(b);
  return 0;
}

TEST(remote_http_round_trip) {
  int skip = 0;
  const char *url = server_url("NEXXO_TEST_HTTP_URL", &skip);
  return url ? remote_round_trip(url) : skip;
}

TEST(remote_redis_round_trip) {
  int skip = 0;
  const char *url = server_url("NEXXO_TEST_REDIS_URL", &skip);
  return url ? remote_round_trip(url) : skip;
}

#define ENTRY(name) {#name, test_##name}
static const struct {
  const char *name;
  int (*fn)(void);
} TESTS[] = {
    ENTRY(version_and_status_str),
    ENTRY(options_validation),
    ENTRY(open_creates_directories),
    ENTRY(open_bad_arguments),
    ENTRY(set_get_delete),
    ENTRY(argument_errors),
    ENTRY(get_into_buffer_sizes),
    ENTRY(batch_set_is_validated_whole),
    ENTRY(batch_get_statuses),
    ENTRY(stats_exact_after_mixed_ops),
    ENTRY(reopen_persistence),
    ENTRY(stats_json),
    ENTRY(latency_in_stats_json),
    ENTRY(tags_set_and_invalidate),
    ENTRY(clear_several_categories),
    ENTRY(compact_flush_enforce),
    ENTRY(read_only_handle),
    ENTRY(second_handle_in_process_shares),
    ENTRY(second_process_shares),
    ENTRY(fork_child_opens_its_own),
    ENTRY(fork_child_of_a_client),
    ENTRY(environment_variables),
    ENTRY(fallback_on_bad_path),
    ENTRY(foreign_directories_are_left_alone),
    ENTRY(concurrent_threads),
    ENTRY(untrusted_directories),
    ENTRY(policy_cap_keeps_hot_set),
    ENTRY(policy_category_limit),
    ENTRY(policy_max_age_with_clock),
    ENTRY(batch_get_many),
    ENTRY(remote_options),
    ENTRY(remote_http_round_trip),
    ENTRY(remote_redis_round_trip),
};

int main(int argc, char **argv) {
  int failed = 0, ran = 0;
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) printf("%s\n", TESTS[i].name);
    return 0;
  }
  for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
    if (argc > 1 && strcmp(argv[1], TESTS[i].name) != 0) continue;
    ran++;
    int r = TESTS[i].fn();
    printf("%s %s\n", r == 0 ? "ok  " : r == 77 ? "skip" : "FAIL", TESTS[i].name);
    if (r == 77 && argc > 1) return 77; /* ctest's SKIP_RETURN_CODE */
    failed += r != 0 && r != 77;
  }
  if (ran == 0) {
    fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)");
    return 2;
  }
  return failed ? 1 : 0;
}
