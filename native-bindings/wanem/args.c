/* Command-line parsing: a table of options, each with bounds. A plain option
   (--delay-ms) sets both directions; --ab-<opt> / --ba-<opt> override one
   direction and win whatever the order on the command line. */
#define _GNU_SOURCE
#include "args.h"

#include <errno.h>
#include <math.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MTU 1500
#define DEFAULT_QUEUE_MS 50.0 /* used when a rate is set and no queue bound is */
#define UNSET NAN

static const char USAGE[] =
    "usage: dwcp-wanem --ns-a NS --ns-b NS --tun-a IF --tun-b IF\n"
    "         [--delay-ms MS] [--jitter-ms MS] [--loss P] [--rate-mbit R]\n"
    "         [--queue-ms MS] [--queue-bytes B] [--reorder] [--mtu N] [--seed N]\n"
    "         [--no-gso]\n"
    "  per direction: --ab-<opt> (A->B) or --ba-<opt> (B->A) for delay-ms,\n"
    "  jitter-ms, loss, rate-mbit, queue-ms, queue-bytes.\n"
    "  loss is a probability per MTU-sized packet (0.01 = 1 %); rate-mbit 0 =\n"
    "  unlimited; with a rate and no queue bound the queue is 50 ms.\n"
    "  --no-gso: no TSO bursts from the kernel (slower; for measuring the\n"
    "  per-packet path).\n"
    "  Prints a JSON ready line, then JSON counters on SIGUSR1 and at exit.\n";

/* A numeric per-direction option: name, bounds, field offset. */
struct num_opt {
  const char *name;
  double min, max;
  size_t offset; /* of the double inside struct link_params */
};

static const struct num_opt NUM_OPTS[] = {
    {"delay-ms", 0, 60000, offsetof(struct link_params, delay_ms)},
    {"jitter-ms", 0, 60000, offsetof(struct link_params, jitter_ms)},
    {"loss", 0, 1, offsetof(struct link_params, loss)},
    {"rate-mbit", 0, 100000, offsetof(struct link_params, rate_mbit)},
    {"queue-ms", 0, 60000, offsetof(struct link_params, queue_ms)},
    {"queue-bytes", 0, 1e10, offsetof(struct link_params, queue_bytes)},
};
#define N_NUM_OPTS (sizeof NUM_OPTS / sizeof NUM_OPTS[0])

/* Print "dwcp-wanem: <reason>" plus usage; returns -1 for the caller. */
static int usage_error(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "dwcp-wanem: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n%s", USAGE);
  return -1;
}

/* Parse a finite number within [min, max] for option `name`. */
static int parse_num(const char *name, const char *s, double min, double max,
                     double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v))
    return usage_error("--%s: not a number: '%s'", name, s);
  if (v < min || v > max) {
    char range[64];
    snprintf(range, sizeof range, "must be in [%g, %g]", min, max);
    return usage_error("--%s: %s", name, range);
  }
  *out = v;
  return 0;
}

/* Parameters with every numeric field UNSET. */
static struct link_params unset_params(void) {
  struct link_params p = {UNSET, UNSET, UNSET, UNSET, UNSET, UNSET, 0};
  return p;
}

/* dst.field = src.field for every field src sets. */
static void overlay(struct link_params *dst, const struct link_params *src) {
  for (size_t i = 0; i < N_NUM_OPTS; i++) {
    double v = *(const double *)((const char *)src + NUM_OPTS[i].offset);
    if (!isnan(v)) *(double *)((char *)dst + NUM_OPTS[i].offset) = v;
  }
}

/* Defaults, then the common options, then the direction's own. */
static struct link_params resolve(const struct link_params *common,
                                  const struct link_params *own, int reorder) {
  struct link_params p = {0, 0, 0, 0, -1, -1, reorder};
  overlay(&p, common);
  overlay(&p, own);
  if (p.rate_mbit > 0 && p.queue_ms < 0 && p.queue_bytes < 0)
    p.queue_ms = DEFAULT_QUEUE_MS;
  return p;
}

/* Try `opt` (without leading dashes) as a numeric option; 1 if matched. */
static int match_num(const char *opt, const char *val, struct link_params *common,
                     struct link_params *ab, struct link_params *ba, int *rc) {
  struct link_params *target = common;
  const char *base = opt;
  if (strncmp(opt, "ab-", 3) == 0) target = ab, base = opt + 3;
  else if (strncmp(opt, "ba-", 3) == 0) target = ba, base = opt + 3;
  for (size_t i = 0; i < N_NUM_OPTS; i++) {
    if (strcmp(base, NUM_OPTS[i].name) != 0) continue;
    double *field = (double *)((char *)target + NUM_OPTS[i].offset);
    *rc = val ? parse_num(opt, val, NUM_OPTS[i].min, NUM_OPTS[i].max, field)
              : usage_error("--%s needs a value%s", opt, "");
    return 1;
  }
  return 0;
}

/* Try `opt` as a string/integer option of the whole link; 1 if matched. */
static int match_other(const char *opt, const char *val, struct args *a, int *rc) {
  const char **str = NULL;
  if (strcmp(opt, "ns-a") == 0) str = &a->ns_a;
  else if (strcmp(opt, "ns-b") == 0) str = &a->ns_b;
  else if (strcmp(opt, "tun-a") == 0) str = &a->tun_a;
  else if (strcmp(opt, "tun-b") == 0) str = &a->tun_b;
  else if (strcmp(opt, "mtu") != 0 && strcmp(opt, "seed") != 0) return 0;
  if (val == NULL) {
    *rc = usage_error("--%s needs a value%s", opt, "");
    return 1;
  }

  /* Strings are taken as they are; mtu and seed are numbers. */
  double v;
  if (str) *str = val, *rc = 0;
  else if (strcmp(opt, "mtu") == 0)
    *rc = parse_num(opt, val, 576, 65535, &v), a->mtu = (int)v;
  else
    *rc = parse_num(opt, val, 0, 9007199254740992.0, &v), a->seed = (uint64_t)v;
  return 1;
}

/* Required options present, names valid, A and B distinct. */
static int validate(const struct args *a) {
  const char *missing = !a->ns_a ? "ns-a" : !a->ns_b ? "ns-b"
                      : !a->tun_a ? "tun-a" : !a->tun_b ? "tun-b" : NULL;
  if (missing) return usage_error("--%s is required%s", missing, "");
  if (strlen(a->tun_a) >= IFNAMSIZ || strlen(a->tun_b) >= IFNAMSIZ)
    return usage_error("--tun-a/--tun-b: interface names must be under %s bytes%s", "16", "");
  if (strcmp(a->ns_a, a->ns_b) == 0)
    return usage_error("--ns-a and --ns-b must differ (both '%s')%s", a->ns_a, "");
  return 0;
}

int args_parse(int argc, char **argv, struct args *a) {
  memset(a, 0, sizeof *a);
  a->mtu = DEFAULT_MTU;
  a->seed = (uint64_t)time(NULL);
  struct link_params common = unset_params(), ab = unset_params(), ba = unset_params();
  int reorder = 0;

  /* Walk the options; each takes one value except the flags. */
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0) return usage_error("unexpected argument '%s'%s", arg, "");
    const char *opt = arg + 2;
    if (strcmp(opt, "help") == 0) return fputs(USAGE, stdout), 1;
    if (strcmp(opt, "reorder") == 0) { reorder = 1; continue; }
    if (strcmp(opt, "no-gso") == 0) { a->no_gso = 1; continue; }
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (!match_num(opt, val, &common, &ab, &ba, &rc) && !match_other(opt, val, a, &rc))
      return usage_error("unknown option '%s'%s", arg, "");
    if (rc < 0) return -1;
    i++;
  }

  /* Merge into the two directions and check the whole. */
  a->ab = resolve(&common, &ab, reorder);
  a->ba = resolve(&common, &ba, reorder);
  return validate(a);
}
