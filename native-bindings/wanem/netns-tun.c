/* TUN setup inside a network namespace. setns() switches only the calling
   thread, so this runs on the main thread before the link threads start;
   the TUN device stays in the namespace it was created in even after we
   switch back, and disappears when its fd closes (not persistent). */
#define _GNU_SOURCE
#include "netns-tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NETNS_RUN_DIR "/run/netns/"
/* Offloads we accept from the kernel: checksum and TCP segmentation. No UFO
   or USO, so every UDP packet is already wire-sized. */
#define TUN_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
#define TUN_TXQUEUELEN 1000 /* default 500 drops bursts at 1 Gbit/s */

/* Print "dwcp-wanem: <step> <what>: <strerror(errno)>" and return -1. */
static int fail(const char *step, const char *what) {
  fprintf(stderr, "dwcp-wanem: %s %s: %s\n", step, what, strerror(errno));
  return -1;
}

/* Open a namespace by name (under /run/netns) or by path. */
static int open_netns(const char *ns) {
  char path[512];
  if (strchr(ns, '/')) snprintf(path, sizeof path, "%s", ns);
  else snprintf(path, sizeof path, NETNS_RUN_DIR "%s", ns);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open netns", path);
  return fd;
}

/* Create the TUN in the current namespace with vnet headers and offloads. */
static int create_tun(const char *ifname, int gso) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail("open", "/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fail("TUNSETIFF", ifname);
    close(fd);
    return -1;
  }

  /* Ask for TSO bursts; saves ~40x syscalls at MTU 1500 (see gso.c).
     Without them the kernel segments before the TUN. */
  if (ioctl(fd, TUNSETOFFLOAD, gso ? (unsigned long)TUN_OFFLOADS : 0ul) < 0) {
    fail("TUNSETOFFLOAD", ifname);
    close(fd);
    return -1;
  }
  return fd;
}

/* Set MTU and queue length, then bring the interface up (same namespace). */
static int configure_if(const char *ifname, int mtu) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail("socket", "for ioctl");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);

  /* Each step names itself in the error. */
  int rc = 0;
  ifr.ifr_mtu = mtu;
  if (ioctl(s, SIOCSIFMTU, &ifr) < 0) rc = fail("set mtu", ifname);
  ifr.ifr_qlen = TUN_TXQUEUELEN;
  if (rc == 0 && ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) rc = fail("set txqueuelen", ifname);
  if (rc == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) < 0) rc = fail("get flags", ifname);
  ifr.ifr_flags |= IFF_UP;
  if (rc == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = fail("set up", ifname);
  close(s);
  return rc;
}

int tun_open_in_netns(const char *ns, const char *ifname, int mtu, int gso) {
  /* Remember where we are, then enter the target namespace. */
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) return fail("open", "/proc/self/ns/net");
  int target = open_netns(ns);
  if (target < 0) {
    close(home);
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    fail("setns", ns);
    close(target);
    close(home);
    return -1;
  }

  /* Create and configure the TUN there. */
  int fd = create_tun(ifname, gso);
  if (fd >= 0 && configure_if(ifname, mtu) < 0) {
    close(fd);
    fd = -1;
  }

  /* Go home whatever happened; failing to is fatal for the next TUN. */
  if (setns(home, CLONE_NEWNET) < 0) {
    fail("setns", "back to original namespace");
    if (fd >= 0) close(fd);
    fd = -1;
  }
  close(target);
  close(home);
  return fd;
}
