/* Packets held by one direction of the link until their delivery time, and
   the min-heap ordering them by (due time, arrival sequence). */
#ifndef WANEM_PKTQ_H
#define WANEM_PKTQ_H
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

/* One packet as read from (and written to) a TUN with IFF_VNET_HDR. */
struct pkt {
  uint64_t due_ns;         /* CLOCK_MONOTONIC time to hand it to the far TUN */
  uint64_t seq;            /* arrival order; breaks ties so FIFO holds */
  uint32_t len;            /* bytes in data[] (IP packet, no vnet header) */
  uint32_t segs;           /* wire segments it stands for (GSO) */
  uint64_t wire_bytes;     /* bytes those segments take on the wire */
  struct virtio_net_hdr vh;
  unsigned char data[];
};

/* Binary min-heap of packets keyed by (due_ns, seq). */
struct pktq {
  struct pkt **items;
  size_t len, cap;
};

/* Add p; returns -1 when out of memory (p is not taken then). */
int pktq_push(struct pktq *q, struct pkt *p);
/* The earliest packet, or NULL when empty. */
static inline struct pkt *pktq_peek(const struct pktq *q) {
  return q->len ? q->items[0] : NULL;
}
/* Remove and return the earliest packet (q must not be empty). */
struct pkt *pktq_pop(struct pktq *q);
/* Free every held packet and the array. */
void pktq_free(struct pktq *q);
#endif
