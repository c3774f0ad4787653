/* TCP segmentation offload (GSO) packets from a TUN with IFF_VNET_HDR: how
   many wire segments one stands for, and how to cut one out in software. */
#ifndef WANEM_GSO_H
#define WANEM_GSO_H
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

/* Layout of a packet as the wire would see it. */
struct gso_info {
  uint32_t segs;     /* wire segments (1 for a plain packet) */
  uint32_t mss;      /* payload bytes per segment (GSO only) */
  uint32_t hdr_len;  /* IP + TCP header bytes (GSO only) */
  uint32_t l3_len;   /* IP header bytes (GSO only) */
  int ipv6;          /* 1 for IPv6, 0 for IPv4 */
  int is_gso;        /* 1 when segs come from a TCP GSO packet */
};

/* Fill *gi for the packet; a packet that is not a TCP GSO packet we can
   parse counts as one segment of len bytes. */
void gso_parse(const struct virtio_net_hdr *vh, const uint8_t *pkt,
               uint32_t len, struct gso_info *gi);

/* Wire bytes of segment i (header + its slice of payload). */
uint32_t gso_segment_len(const struct gso_info *gi, uint32_t len, uint32_t i);

/* Write segment i as a standalone IP packet with correct IP and TCP
   checksums into out (room for gso_segment_len bytes); returns its length. */
uint32_t gso_build_segment(const struct gso_info *gi, const uint8_t *pkt,
                           uint32_t len, uint32_t i, uint8_t *out);
#endif
