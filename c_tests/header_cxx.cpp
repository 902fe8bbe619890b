// The header compiled as C++ (extern "C" guards), included twice.
#include "nexxo_cache.h"
#include "nexxo_cache.h"
#include <cstring>

extern "C" int nexxo_header_cxx_probe(void);
extern "C" int nexxo_header_cxx_probe(void) {
  const char *v = nexxo_version();
  nexxo_status s = NEXXO_NOT_FOUND;
  return std::strlen(v) > 0 && s == 1 ? 1 : 0;
}
