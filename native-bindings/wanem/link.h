/* One direction of the emulated WAN link: read packets from one TUN, apply
   loss, rate limit with a drop-tail queue, delay and jitter, write them to
   the other TUN when due. Each direction runs on its own thread. */
#ifndef WANEM_LINK_H
#define WANEM_LINK_H
#include <stdint.h>
#include "pktq.h"

/* What the user asked for, per direction. */
struct link_params {
  double delay_ms;    /* one-way delay */
  double jitter_ms;   /* uniform +-jitter added to the delay */
  double loss;        /* probability in [0,1] per wire segment */
  double rate_mbit;   /* serialization rate; 0 = unlimited */
  double queue_ms;    /* drop-tail bound on backlog, in time at rate; <0 unset */
  double queue_bytes; /* drop-tail bound on backlog, in bytes; <0 unset */
  int reorder;        /* 1: jitter may reorder; 0: keep packets in order */
};

/* Counters, written by the direction's thread, read by the main thread. */
struct link_counters {
  uint64_t fwd_packets, fwd_bytes;     /* wire segments / bytes delivered */
  uint64_t loss_packets, loss_bytes;   /* dropped by random loss */
  uint64_t queue_packets, queue_bytes; /* dropped by the full queue */
  uint64_t gso_split;                  /* bursts cut in software */
  uint64_t write_errors;               /* writes the far TUN refused */
};

/* One direction's configuration and state. */
struct link {
  const char *name;   /* "a_to_b" or "b_to_a" */
  struct link_params p;
  int in_fd, out_fd;  /* TUN fds (non-blocking) */
  int stop_fd;        /* eventfd: readable once the link must stop */
  uint64_t rng;       /* PRNG state, seeded per direction */

  /* Emulation state (owned by the link's thread). */
  uint64_t link_free_ns;  /* when the rate limiter finishes its backlog */
  uint64_t last_due_ns;   /* latest due time handed out (in-order mode) */
  uint64_t seq;           /* arrival counter */
  uint64_t held_bytes;    /* memory held by queued packets */
  struct pktq q;

  struct link_counters c;
};

/* Thread body: runs until stop_fd becomes readable. arg is a struct link. */
void *link_run(void *arg);

/* Copy the counters atomically field by field for printing. */
void link_snapshot(const struct link *l, struct link_counters *out);
#endif
