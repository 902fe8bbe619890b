/* A program built outside the tree against an installed nexxo_cache. */
#include <stdio.h>
#include <string.h>
#include "nexxo_cache.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  nexxo_cache *c = NULL;
  nexxo_status s = nexxo_cache_open(argv[1], NULL, &c);
  if (s != NEXXO_OK) {
    fprintf(stderr, "open: %s\n", nexxo_status_str(s));
    return 1;
  }
  const char *k = "consumer", *v = "works";
  nexxo_bytes b = {NULL, 0};
  int ok = nexxo_cache_set(c, "meta", (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v)) == NEXXO_OK &&
           nexxo_cache_get(c, "meta", (const uint8_t *)k, strlen(k), &b) == NEXXO_OK && b.len == 5 &&
           memcmp(b.data, v, 5) == 0;
  nexxo_bytes_free(&b);
  nexxo_cache_close(c);
  printf("%s %s\n", nexxo_version(), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
