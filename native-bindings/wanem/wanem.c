/* dwcp-wanem: userspace WAN link emulator between two network namespaces.
   The kernel here has no netem qdisc, so delay and loss are applied by this
   process, which owns one TUN device in each namespace and forwards IP
   packets between them (see link.c for the timing model and gso.c for how
   TSO bursts are accounted per wire segment).

   stdout, one JSON object per line:
     {"event":"ready",...}  once both TUNs are up
     {"event":"stats",...}  on SIGUSR1, and with "final":true at exit
   SIGTERM/SIGINT stop it cleanly (exit 0). Errors go to stderr, exit 1;
   a bad command line exits 2. */
#define _GNU_SOURCE
#include "args.h"
#include "link.h"
#include "netns-tun.h"
#include "rng.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#define TIMER_SLACK_NS 1000 /* default 50 us slack would blur sub-ms timing */

/* Print one direction's counters as a JSON object (no newline). */
static void print_counters(const struct link *l) {
  struct link_counters c;
  link_snapshot(l, &c);
  printf("\"%s\":{\"forwarded_packets\":%llu,\"forwarded_bytes\":%llu,"
         "\"lost_packets\":%llu,\"lost_bytes\":%llu,"
         "\"queue_dropped_packets\":%llu,\"queue_dropped_bytes\":%llu,"
         "\"gso_split\":%llu,\"write_errors\":%llu}",
         l->name, (unsigned long long)c.fwd_packets, (unsigned long long)c.fwd_bytes,
         (unsigned long long)c.loss_packets, (unsigned long long)c.loss_bytes,
         (unsigned long long)c.queue_packets, (unsigned long long)c.queue_bytes,
         (unsigned long long)c.gso_split, (unsigned long long)c.write_errors);
}

/* Print the stats line for both directions. */
static void print_stats(const struct link *ab, const struct link *ba, int final) {
  printf("{\"event\":\"stats\",\"final\":%s,", final ? "true" : "false");
  print_counters(ab);
  putchar(',');
  print_counters(ba);
  printf("}\n");
  fflush(stdout);
}

/* Print the ready line with the effective parameters. */
static void print_ready(const struct args *a) {
  const struct link_params *d[2] = {&a->ab, &a->ba};
  printf("{\"event\":\"ready\",\"pid\":%d,\"tun_a\":\"%s\",\"tun_b\":\"%s\",\"mtu\":%d,"
         "\"gso\":%s", (int)getpid(), a->tun_a, a->tun_b, a->mtu, a->no_gso ? "false" : "true");
  for (int i = 0; i < 2; i++)
    printf(",\"%s\":{\"delay_ms\":%g,\"jitter_ms\":%g,\"loss\":%g,\"rate_mbit\":%g,"
           "\"queue_ms\":%g,\"queue_bytes\":%g,\"reorder\":%s}",
           i ? "b_to_a" : "a_to_b", d[i]->delay_ms, d[i]->jitter_ms, d[i]->loss,
           d[i]->rate_mbit, d[i]->queue_ms, d[i]->queue_bytes,
           d[i]->reorder ? "true" : "false");
  printf("}\n");
  fflush(stdout);
}

/* Fill one direction; seeds differ per direction so loss is independent. */
static void init_link(struct link *l, const char *name, const struct link_params *p,
                      int in_fd, int out_fd, int stop_fd, uint64_t seed) {
  memset(l, 0, sizeof *l);
  l->name = name;
  l->p = *p;
  l->in_fd = in_fd;
  l->out_fd = out_fd;
  l->stop_fd = stop_fd;
  l->rng = seed;
  rng_next(&l->rng);
}

/* Block until SIGTERM/SIGINT/SIGHUP, printing stats on each SIGUSR1. */
static void wait_for_stop(const sigset_t *set, const struct link *ab,
                          const struct link *ba) {
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) return;
    if (sig == SIGUSR1) print_stats(ab, ba, 0);
    else return;
  }
}

int main(int argc, char **argv) {
  struct args a;
  int rc = args_parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? 0 : 2;

  /* Signals are taken by sigwait on the main thread only: block them before
     any thread starts so the link threads inherit the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS);

  /* One TUN in each namespace. */
  int fd_a = tun_open_in_netns(a.ns_a, a.tun_a, a.mtu, !a.no_gso);
  if (fd_a < 0) return 1;
  int fd_b = tun_open_in_netns(a.ns_b, a.tun_b, a.mtu, !a.no_gso);
  if (fd_b < 0) return 1;
  int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) return perror("dwcp-wanem: eventfd"), 1;

  /* Start both directions. */
  static struct link ab, ba; /* static: large, and read after threads end */
  init_link(&ab, "a_to_b", &a.ab, fd_a, fd_b, stop_fd, a.seed * 2 + 1);
  init_link(&ba, "b_to_a", &a.ba, fd_b, fd_a, stop_fd, a.seed * 2 + 2);
  pthread_t t_ab, t_ba;
  if (pthread_create(&t_ab, NULL, link_run, &ab) != 0 ||
      pthread_create(&t_ba, NULL, link_run, &ba) != 0) {
    fprintf(stderr, "dwcp-wanem: pthread_create failed\n");
    return 1;
  }
  print_ready(&a);

  /* Run until told to stop, then wake the threads and report. */
  wait_for_stop(&set, &ab, &ba);
  uint64_t one = 1;
  if (write(stop_fd, &one, sizeof one) < 0) perror("dwcp-wanem: stop");
  pthread_join(t_ab, NULL);
  pthread_join(t_ba, NULL);
  print_stats(&ab, &ba, 1);
  close(fd_a);
  close(fd_b);
  return 0;
}
