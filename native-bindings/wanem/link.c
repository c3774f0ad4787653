/* The per-direction emulation loop. Timing model, per wire segment:
     arrival (read from TUN, CLOCK_MONOTONIC)
     -> random loss
     -> drop-tail queue in front of a serializer at rate_mbit
     -> leaves the serializer at link_free_ns
     -> + delay + jitter (clamped so packets stay in order unless --reorder)
     -> written to the far TUN at due_ns.
   A GSO burst whose segments all survive is forwarded whole, due when its
   last segment would have arrived (what the receiver's GRO would see). */
#define _GNU_SOURCE
#include "link.h"
#include "gso.h"
#include "rng.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT_BYTES 65550           /* 64 KiB GSO burst + slack */
#define READ_BATCH 64                 /* reads per wake-up before writing */
#define MAX_HELD_BYTES (512ull << 20) /* memory cap per direction */
#define NS_PER_MS 1000000.0
#define NS_PER_S 1000000000.0
#define MAX_SEGS 1024                 /* 64 KiB / minimum mss, rounded up */

/* Current CLOCK_MONOTONIC time in nanoseconds. */
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Add to a counter read concurrently by the main thread. */
static void count(uint64_t *counter, uint64_t n) {
  __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

void link_snapshot(const struct link *l, struct link_counters *out) {
  const uint64_t *src = (const uint64_t *)&l->c;
  uint64_t *dst = (uint64_t *)out;
  for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
    dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* Does the drop-tail queue have room for seg_bytes more? now is arrival. */
static int queue_admits(const struct link *l, uint64_t now, uint32_t seg_bytes) {
  if (l->p.rate_mbit <= 0) return 1; /* unlimited: no serializer, no queue */
  double backlog_ns = l->link_free_ns > now ? (double)(l->link_free_ns - now) : 0;
  double bytes_per_ns = l->p.rate_mbit * 1e6 / 8.0 / NS_PER_S;
  double backlog_bytes = backlog_ns * bytes_per_ns;

  /* Both bounds apply when both are set; the packet must fit whole. */
  if (l->p.queue_bytes >= 0 && backlog_bytes + seg_bytes > l->p.queue_bytes)
    return 0;
  if (l->p.queue_ms >= 0 &&
      backlog_ns + seg_bytes / bytes_per_ns > l->p.queue_ms * NS_PER_MS)
    return 0;
  return 1;
}

/* Run seg_bytes through the serializer; returns when it has left it. */
static uint64_t serialize(struct link *l, uint64_t now, uint32_t seg_bytes) {
  if (l->p.rate_mbit <= 0) return now;
  uint64_t start = l->link_free_ns > now ? l->link_free_ns : now;
  double tx_ns = seg_bytes * 8.0 * NS_PER_S / (l->p.rate_mbit * 1e6);
  l->link_free_ns = start + (uint64_t)tx_ns;
  return l->link_free_ns;
}

/* Delivery time after leaving the serializer: delay, jitter, ordering. */
static uint64_t due_time(struct link *l, uint64_t left_ns) {
  double d = l->p.delay_ms;
  if (l->p.jitter_ms > 0) d += (rng_unit(&l->rng) * 2.0 - 1.0) * l->p.jitter_ms;
  if (d < 0) d = 0;
  uint64_t due = left_ns + (uint64_t)(d * NS_PER_MS);

  /* In-order mode: never hand out a due time before an earlier packet's. */
  if (!l->p.reorder && due < l->last_due_ns) due = l->last_due_ns;
  if (due > l->last_due_ns) l->last_due_ns = due;
  return due;
}

/* Queue p for delivery at due; drops it if memory is exhausted. */
static void hold(struct link *l, struct pkt *p, uint64_t due) {
  uint64_t size = sizeof *p + p->len;
  p->due_ns = due;
  p->seq = l->seq++;
  if (l->held_bytes + size > MAX_HELD_BYTES || pktq_push(&l->q, p) < 0) {
    count(&l->c.queue_packets, p->segs);
    count(&l->c.queue_bytes, p->wire_bytes);
    free(p);
    return;
  }
  l->held_bytes += size;
}

/* Cut the kept segments of a partly dropped GSO burst into single packets. */
static void hold_segments(struct link *l, const struct pkt *burst,
                          const struct gso_info *gi, const uint8_t *keep,
                          const uint64_t *left_ns) {
  count(&l->c.gso_split, 1);
  for (uint32_t i = 0; i < gi->segs; i++) {
    if (!keep[i]) continue;
    uint32_t seg_len = gso_segment_len(gi, burst->len, i);
    struct pkt *s = malloc(sizeof *s + seg_len);
    if (s == NULL) {
      count(&l->c.queue_packets, 1);
      count(&l->c.queue_bytes, seg_len);
      continue;
    }

    /* A plain packet with full checksums: no GSO, no NEEDS_CSUM. */
    memset(&s->vh, 0, sizeof s->vh);
    s->vh.gso_type = VIRTIO_NET_HDR_GSO_NONE;
    s->len = gso_build_segment(gi, burst->data, burst->len, i, s->data);
    s->segs = 1;
    s->wire_bytes = seg_len;
    hold(l, s, due_time(l, left_ns[i]));
  }
}

/* Apply loss and the queue to each wire segment of p, then hold what's left. */
static void admit(struct link *l, struct pkt *p, uint64_t now) {
  struct gso_info gi;
  gso_parse(&p->vh, p->data, p->len, &gi);
  if (gi.segs > MAX_SEGS) gi.segs = 1, gi.is_gso = 0; /* tiny mss: treat whole */

  /* Verdict per segment: lost, dropped by the full queue, or kept. */
  uint8_t keep[MAX_SEGS];
  uint64_t left_ns[MAX_SEGS];
  uint32_t kept = 0;
  uint64_t kept_bytes = 0;
  for (uint32_t i = 0; i < gi.segs; i++) {
    uint32_t seg_bytes = gso_segment_len(&gi, p->len, i);
    keep[i] = 0;
    if (l->p.loss > 0 && rng_unit(&l->rng) < l->p.loss) {
      count(&l->c.loss_packets, 1);
      count(&l->c.loss_bytes, seg_bytes);
    } else if (!queue_admits(l, now, seg_bytes)) {
      count(&l->c.queue_packets, 1);
      count(&l->c.queue_bytes, seg_bytes);
    } else {
      keep[i] = 1;
      left_ns[i] = serialize(l, now, seg_bytes);
      kept++;
      kept_bytes += seg_bytes;
    }
  }

  /* All kept: forward the burst whole. None: done. Some: cut it up. */
  if (kept == gi.segs) {
    p->segs = gi.segs;
    p->wire_bytes = kept_bytes;
    hold(l, p, due_time(l, left_ns[gi.segs - 1]));
    return;
  }
  if (kept > 0) hold_segments(l, p, &gi, keep, left_ns);
  free(p);
}

/* Read up to READ_BATCH packets from the TUN; returns -1 on a fatal error. */
static int read_batch(struct link *l) {
  for (int n = 0; n < READ_BATCH; n++) {
    struct pkt *p = malloc(sizeof *p + MAX_PKT_BYTES);
    if (p == NULL) return 0; /* leave them in the TUN queue; retry later */
    struct iovec iov[2] = {{&p->vh, sizeof p->vh}, {p->data, MAX_PKT_BYTES}};
    ssize_t got = readv(l->in_fd, iov, 2);
    if (got < (ssize_t)sizeof p->vh) {
      free(p);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
      return got < 0 ? -1 : 0;
    }

    /* Shrink to size (in place for this size class) and account it. */
    p->len = (uint32_t)(got - (ssize_t)sizeof p->vh);
    struct pkt *small = realloc(p, sizeof *p + p->len);
    admit(l, small ? small : p, now_ns());
  }
  return 0;
}

/* Write every packet that is due; returns ns until the next one (-1: none). */
static int64_t write_due(struct link *l) {
  for (;;) {
    struct pkt *p = pktq_peek(&l->q);
    if (p == NULL) return -1;
    uint64_t now = now_ns();
    if (p->due_ns > now) return (int64_t)(p->due_ns - now);

    /* Hand it to the far side's kernel; the stack processes it inline. */
    pktq_pop(&l->q);
    struct iovec iov[2] = {{&p->vh, sizeof p->vh}, {p->data, p->len}};
    if (writev(l->out_fd, iov, 2) < 0) {
      count(&l->c.write_errors, 1);
    } else {
      count(&l->c.fwd_packets, p->segs);
      count(&l->c.fwd_bytes, p->wire_bytes);
    }
    l->held_bytes -= sizeof *p + p->len;
    free(p);
  }
}

void *link_run(void *arg) {
  struct link *l = arg;
  struct pollfd fds[2] = {{l->in_fd, POLLIN, 0}, {l->stop_fd, POLLIN, 0}};
  int64_t wait_ns = -1;

  /* Sleep until input arrives, the next packet is due, or we must stop. */
  for (;;) {
    struct timespec ts = {wait_ns / 1000000000, wait_ns % 1000000000};
    int n = ppoll(fds, 2, wait_ns < 0 ? NULL : &ts, NULL);
    if (n < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break;
    if ((fds[0].revents & POLLIN) && read_batch(l) < 0) break;
    wait_ns = write_due(l);
  }
  pktq_free(&l->q);
  l->held_bytes = 0;
  return NULL;
}
