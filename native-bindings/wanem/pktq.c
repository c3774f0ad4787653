/* Min-heap of packets by delivery time. In the default in-order mode due
   times never decrease, so the heap degenerates to a FIFO; the heap is there
   so --reorder can let jitter reorder packets with the same code. */
#include "pktq.h"

#include <stdlib.h>

#define PKTQ_INITIAL_CAP 1024

/* a goes out before b: earlier due time, then earlier arrival. */
static int before(const struct pkt *a, const struct pkt *b) {
  return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

int pktq_push(struct pktq *q, struct pkt *p) {
  /* Grow the array geometrically. */
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : PKTQ_INITIAL_CAP;
    struct pkt **items = realloc(q->items, cap * sizeof *items);
    if (items == NULL) return -1;
    q->items = items;
    q->cap = cap;
  }

  /* Sift up from the new leaf. */
  size_t i = q->len++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(p, q->items[parent])) break;
    q->items[i] = q->items[parent];
    i = parent;
  }
  q->items[i] = p;
  return 0;
}

struct pkt *pktq_pop(struct pktq *q) {
  struct pkt *top = q->items[0];
  struct pkt *last = q->items[--q->len];

  /* Sift the last leaf down from the root. */
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= q->len) break;
    if (child + 1 < q->len && before(q->items[child + 1], q->items[child]))
      child++;
    if (!before(q->items[child], last)) break;
    q->items[i] = q->items[child];
    i = child;
  }
  if (q->len > 0) q->items[i] = last;
  return top;
}

void pktq_free(struct pktq *q) {
  for (size_t i = 0; i < q->len; i++) free(q->items[i]);
  free(q->items);
  q->items = NULL;
  q->len = q->cap = 0;
}
