/* The header, included twice, must compile alone with -Wall -Wextra -Wpedantic -Werror. */
#include "nexxo_cache.h"
#include "nexxo_cache.h"

int nexxo_header_c_probe(void);
int nexxo_header_c_probe(void) {
  nexxo_bytes b = {NULL, 0};
  nexxo_status s = NEXXO_OK;
  nexxo_compression c = NEXXO_COMPRESSION_LZ4;
  nexxo_stats st;
  nexxo_policy_report r;
  nexxo_entry e = {"parse", NULL, 0, NULL, 0};
  nexxo_key k = {"parse", NULL, 0};
  (void)b; (void)st; (void)r; (void)e; (void)k;
  return (int)s + (int)c + NEXXO_CACHE_VERSION_MAJOR + (NEXXO_MAX_KEY_LEN > 0);
}
