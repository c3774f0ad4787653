/* Command line of dwcp-wanem. */
#ifndef WANEM_ARGS_H
#define WANEM_ARGS_H
#include <stdint.h>
#include "link.h"

/* Everything the command line sets. */
struct args {
  const char *ns_a, *ns_b;     /* network namespaces (names or paths) */
  const char *tun_a, *tun_b;   /* TUN device names, one in each namespace */
  int mtu;                     /* MTU of both TUN devices */
  int no_gso;                  /* 1: ask the kernel for wire-sized packets only */
  uint64_t seed;               /* PRNG seed; directions derive their own */
  struct link_params ab, ba;   /* A->B and B->A */
};

/* Parse argv into *a. On a bad command line prints "dwcp-wanem: <reason>"
   and the usage to stderr and returns -1; for --help prints usage to stdout
   and returns 1. */
int args_parse(int argc, char **argv, struct args *a);
#endif
