#include <stdio.h>
#include <string.h>
#include "nexxo_cache.h"

int nexxo_header_c_probe(void);
int nexxo_header_cxx_probe(void);

int main(void) {
  char expect[64];
  snprintf(expect, sizeof expect, "%d.%d.%d", NEXXO_CACHE_VERSION_MAJOR, NEXXO_CACHE_VERSION_MINOR,
           NEXXO_CACHE_VERSION_PATCH);
  if (strcmp(expect, nexxo_version()) != 0) {
    fprintf(stderr, "version macros %s != nexxo_version() %s\n", expect, nexxo_version());
    return 1;
  }
  if (nexxo_header_c_probe() != 1 + 1 + 1 || nexxo_header_cxx_probe() != 1) {
    fprintf(stderr, "header probes disagree\n");
    return 1;
  }
  printf("header ok, version %s\n", nexxo_version());
  return 0;
}
