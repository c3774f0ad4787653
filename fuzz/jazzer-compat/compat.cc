// Symbols that @jazzer.js/fuzzer 4.0.0's prebuilt linux-x64 addon takes from
// glibc 2.38 and libstdc++ 13, for hosts with older ones (Debian 12: glibc
// 2.36, libstdc++ 12). Built and preloaded by fuzz/jazzer-compat.ts only
// where needed; see fuzz/README.md.

#include <cstdlib>
#include <ios>

// C23 strtol/strtoul (glibc 2.38) differ from C99 only in also accepting
// "0b" binary prefixes with base 0 or 2, which libFuzzer's option parsing
// never passes.
extern "C" long dwcp_compat_strtol(const char *text, char **end, int base) {
  return std::strtol(text, end, base);
}
extern "C" unsigned long dwcp_compat_strtoul(const char *text, char **end, int base) {
  return std::strtoul(text, end, base);
}
extern "C" long __isoc23_strtol(const char *, char **, int) __attribute__((alias("dwcp_compat_strtol")));
extern "C" unsigned long __isoc23_strtoul(const char *, char **, int) __attribute__((alias("dwcp_compat_strtoul")));

// libstdc++ 13 initializes the standard streams once, from this function's
// translation unit; before 13 each user of <iostream> held an Init object.
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
