/* Software segmentation of TCP GSO packets. wanem reads 64 KiB TSO bursts
   from the TUN (one syscall instead of ~44) and forwards them whole when
   every segment survives; only a burst that loses some segments, or that
   overflows the queue part way, is cut here into the MTU-sized packets a
   real NIC would have sent, so loss and queue drops hit single segments. */
#include "gso.h"

#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <string.h>

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80
#define TCP_FLAGS_OFFSET 13 /* byte holding CWR..FIN in the TCP header */

/* Header lengths of an IPv4/IPv6 + TCP packet; 0 when not parseable. */
static uint32_t parse_headers(const uint8_t *pkt, uint32_t len, int *ipv6,
                              uint32_t *l3_len) {
  if (len < 1) return 0;
  int version = pkt[0] >> 4;

  /* IPv4: variable header, must carry TCP. */
  if (version == 4) {
    if (len < sizeof(struct iphdr)) return 0;
    const struct iphdr *ip = (const struct iphdr *)pkt;
    if (ip->protocol != IPPROTO_TCP) return 0;
    *ipv6 = 0;
    *l3_len = ip->ihl * 4u;
  } else if (version == 6) {
    /* IPv6: the kernel's TSO packets carry no extension headers. */
    if (len < sizeof(struct ip6_hdr)) return 0;
    const struct ip6_hdr *ip6 = (const struct ip6_hdr *)pkt;
    if (ip6->ip6_nxt != IPPROTO_TCP) return 0;
    *ipv6 = 1;
    *l3_len = sizeof(struct ip6_hdr);
  } else {
    return 0;
  }

  /* TCP header length from its data offset. */
  if (len < *l3_len + sizeof(struct tcphdr)) return 0;
  const struct tcphdr *th = (const struct tcphdr *)(pkt + *l3_len);
  uint32_t hdr_len = *l3_len + th->doff * 4u;
  return hdr_len <= len ? hdr_len : 0;
}

void gso_parse(const struct virtio_net_hdr *vh, const uint8_t *pkt,
               uint32_t len, struct gso_info *gi) {
  memset(gi, 0, sizeof *gi);
  gi->segs = 1;

  /* Only TCP GSO is enabled on the TUN (TUN_F_TSO4|TUN_F_TSO6). */
  uint8_t type = vh->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6)
    return;
  if (vh->gso_size == 0) return;
  uint32_t hdr_len = parse_headers(pkt, len, &gi->ipv6, &gi->l3_len);
  if (hdr_len == 0 || hdr_len >= len) return;

  /* Payload split into mss-sized segments, the last one shorter. */
  gi->is_gso = 1;
  gi->hdr_len = hdr_len;
  gi->mss = vh->gso_size;
  gi->segs = (len - hdr_len + gi->mss - 1) / gi->mss;
}

uint32_t gso_segment_len(const struct gso_info *gi, uint32_t len, uint32_t i) {
  if (!gi->is_gso) return len;
  uint32_t payload = len - gi->hdr_len;
  uint32_t off = i * gi->mss;
  uint32_t seg = payload - off < gi->mss ? payload - off : gi->mss;
  return gi->hdr_len + seg;
}

/* Add bytes to a ones'-complement running sum (RFC 1071). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
  for (; n > 1; p += 2, n -= 2) sum += (uint32_t)p[0] << 8 | p[1];
  if (n) sum += (uint32_t)p[0] << 8;
  return sum;
}

/* Fold a running sum into the 16-bit complemented checksum. */
static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Fix IP length/id/checksum of a segment; returns the pseudo-header sum. */
static uint32_t fix_ip_header(const struct gso_info *gi, uint8_t *out,
                              uint32_t seg_len, uint32_t i) {
  uint32_t tcp_len = seg_len - gi->l3_len;
  if (gi->ipv6) {
    struct ip6_hdr *ip6 = (struct ip6_hdr *)out;
    ip6->ip6_plen = htons((uint16_t)tcp_len);
    uint32_t sum = csum_add(0, (uint8_t *)&ip6->ip6_src, 32);
    return sum + (tcp_len >> 16) + (tcp_len & 0xffff) + IPPROTO_TCP;
  }

  /* IPv4: the kernel's TSO bumps the id per segment; mirror that. */
  struct iphdr *ip = (struct iphdr *)out;
  ip->tot_len = htons((uint16_t)seg_len);
  ip->id = htons((uint16_t)(ntohs(ip->id) + i));
  ip->check = 0;
  ip->check = htons(csum_fold(csum_add(0, out, gi->l3_len)));
  uint32_t sum = csum_add(0, (uint8_t *)&ip->saddr, 8);
  return sum + tcp_len + IPPROTO_TCP;
}

uint32_t gso_build_segment(const struct gso_info *gi, const uint8_t *pkt,
                           uint32_t len, uint32_t i, uint8_t *out) {
  uint32_t seg_len = gso_segment_len(gi, len, i);
  uint32_t payload_off = gi->hdr_len + i * gi->mss;

  /* Headers from the burst, payload slice i after them. */
  memcpy(out, pkt, gi->hdr_len);
  memcpy(out + gi->hdr_len, pkt + payload_off, seg_len - gi->hdr_len);
  uint32_t pseudo = fix_ip_header(gi, out, seg_len, i);

  /* TCP: advance seq; FIN/PSH only on the last segment, CWR only on the
     first (as the kernel's tcp_gso_segment does). */
  struct tcphdr *th = (struct tcphdr *)(out + gi->l3_len);
  th->seq = htonl(ntohl(th->seq) + i * gi->mss);
  uint8_t *flags = (uint8_t *)th + TCP_FLAGS_OFFSET;
  if (i + 1 < gi->segs) *flags &= (uint8_t)~(TCP_FLAG_FIN | TCP_FLAG_PSH);
  if (i > 0) *flags &= (uint8_t)~TCP_FLAG_CWR;

  /* Full TCP checksum: these segments go out without NEEDS_CSUM. */
  th->check = 0;
  uint32_t sum = csum_add(pseudo, (uint8_t *)th, seg_len - gi->l3_len);
  th->check = htons(csum_fold(sum));
  return seg_len;
}
