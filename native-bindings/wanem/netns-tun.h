/* Creating a TUN device inside a named network namespace. */
#ifndef WANEM_NETNS_TUN_H
#define WANEM_NETNS_TUN_H

/* Enter netns `ns` (a name under /run/netns or a path), create TUN `ifname`
   there with IFF_VNET_HDR (and TSO offload if gso), set its MTU and bring it up, then
   return to the caller's namespace. Returns the non-blocking TUN fd, or -1
   after printing "dwcp-wanem: <step> <what>: <strerror>" to stderr. */
int tun_open_in_netns(const char *ns, const char *ifname, int mtu, int gso);
#endif
