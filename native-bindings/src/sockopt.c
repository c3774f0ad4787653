/*
 * dwcp_native: TCP socket options that Node's net module does not expose.
 *
 * Every function takes a socket file descriptor (from socketFd() in
 * native-bindings/index.ts) and throws a JavaScript Error whose message names
 * the option and carries strerror(errno), e.g. "setsockopt TCP_CONGESTION
 * (foo): No such file or directory".
 */
#include "sockopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/tcp.h> /* the kernel's struct tcp_info, newer than glibc's */

#define CONGESTION_NAME_MAX 32 /* TCP_CA_NAME_MAX in the kernel is 16 */
#define AVAILABLE_CC_PATH "/proc/sys/net/ipv4/tcp_available_congestion_control"

/* Throw an Error "<what>: <strerror(err)>" and return NULL for the caller. */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* Read argument i as a non-negative int32; throws naming the argument. */
static int arg_int(napi_env env, napi_value *argv, size_t argc, size_t i,
                   const char *name, int *out) {
  napi_valuetype type = napi_undefined;
  if (i < argc) napi_typeof(env, argv[i], &type);
  if (type != napi_number) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  napi_get_value_int32(env, argv[i], out);
  if (*out < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be >= 0, got %d", name, *out);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* Fetch up to max_args arguments of the current call. */
static size_t get_args(napi_env env, napi_callback_info info, napi_value *argv,
                       size_t max_args) {
  size_t argc = max_args;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc;
}

/* Fetch the call's arguments and its first one as the socket fd. */
static int fd_args(napi_env env, napi_callback_info info, napi_value *argv,
                   size_t max_args, size_t *argc, int *fd) {
  *argc = get_args(env, info, argv, max_args);
  return arg_int(env, argv, *argc, 0, "fd", fd);
}

/* Set obj[key] = (double)value; doubles hold counters exactly up to 2^53. */
static void set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value num;
  napi_create_double(env, v, &num);
  napi_set_named_property(env, obj, key, num);
}

/* tcpInfo(fd): the fields of TCP_INFO that carriers and the controller use. */
static napi_value tcp_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  int fd;
  if (fd_args(env, info, argv, 1, &argc, &fd) < 0) return NULL;

  /* The kernel fills only as much as it knows; zero the rest so older
     kernels report 0 for fields they lack instead of garbage. */
  struct tcp_info ti;
  memset(&ti, 0, sizeof ti);
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
    return throw_errno(env, "getsockopt TCP_INFO", errno);

  /* Build the result object; rates are bytes/s in the kernel, bits/s here. */
  napi_value out;
  napi_create_object(env, &out);
  set_num(env, out, "rttUs", ti.tcpi_rtt);
  set_num(env, out, "rttVarUs", ti.tcpi_rttvar);
  set_num(env, out, "sndCwnd", ti.tcpi_snd_cwnd);
  set_num(env, out, "sndMss", ti.tcpi_snd_mss);
  set_num(env, out, "totalRetrans", ti.tcpi_total_retrans);
  set_num(env, out, "retransmits", ti.tcpi_retransmits);
  set_num(env, out, "lost", ti.tcpi_lost);
  set_num(env, out, "deliveryRateBps", (double)ti.tcpi_delivery_rate * 8.0);
  set_num(env, out, "pacingRateBps", (double)ti.tcpi_pacing_rate * 8.0);
  set_num(env, out, "bytesAcked", (double)ti.tcpi_bytes_acked);
  set_num(env, out, "bytesRetrans", (double)ti.tcpi_bytes_retrans);
  set_num(env, out, "bytesSent", (double)ti.tcpi_bytes_sent);
  set_num(env, out, "minRttUs", ti.tcpi_min_rtt);
  set_num(env, out, "notsentBytes", ti.tcpi_notsent_bytes);
  set_num(env, out, "busyTimeUs", (double)ti.tcpi_busy_time);
  return out;
}

/* setCongestion(fd, name): TCP_CONGESTION, e.g. "bbr" or "cubic". */
static napi_value set_congestion(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  int fd;
  if (fd_args(env, info, argv, 2, &argc, &fd) < 0) return NULL;

  /* Read the name; reject non-strings and names the kernel cannot hold. */
  char name[CONGESTION_NAME_MAX];
  size_t name_len = 0;
  napi_valuetype type = napi_undefined;
  if (argc > 1) napi_typeof(env, argv[1], &type);
  if (type != napi_string) {
    napi_throw_type_error(env, NULL, "congestion name must be a string");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[1], name, sizeof name, &name_len);
  if (name_len == 0 || name_len >= sizeof name - 1) {
    napi_throw_range_error(env, NULL, "congestion name must be 1..30 bytes");
    return NULL;
  }

  /* Apply it; the kernel answers ENOENT for an unknown algorithm. */
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, name_len) < 0) {
    char what[96];
    snprintf(what, sizeof what, "setsockopt TCP_CONGESTION (%s)", name);
    return throw_errno(env, what, errno);
  }
  return NULL;
}

/* getCongestion(fd): the socket's congestion control algorithm name. */
static napi_value get_congestion(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  int fd;
  if (fd_args(env, info, argv, 1, &argc, &fd) < 0) return NULL;

  char name[CONGESTION_NAME_MAX];
  memset(name, 0, sizeof name);
  socklen_t len = sizeof name - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) < 0)
    return throw_errno(env, "getsockopt TCP_CONGESTION", errno);

  napi_value out;
  napi_create_string_utf8(env, name, strnlen(name, len), &out);
  return out;
}

/* availableCongestion(): names listed by the kernel, e.g. ["reno","cubic"]. */
static napi_value available_congestion(napi_env env, napi_callback_info info) {
  (void)info;
  FILE *f = fopen(AVAILABLE_CC_PATH, "r");
  if (f == NULL) return throw_errno(env, "read " AVAILABLE_CC_PATH, errno);
  char line[512] = {0};
  char *got = fgets(line, sizeof line, f);
  fclose(f);

  /* Split the single space-separated line into a JS array. */
  napi_value out;
  napi_create_array(env, &out);
  uint32_t n = 0;
  for (char *save = NULL, *tok = strtok_r(got ? line : NULL, " \t\n", &save);
       tok != NULL; tok = strtok_r(NULL, " \t\n", &save)) {
    napi_value s;
    napi_create_string_utf8(env, tok, NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, out, n++, s);
  }
  return out;
}

/* Shared body of the integer setters: setsockopt(fd, level, opt, bytes). */
static napi_value set_int_opt(napi_env env, napi_callback_info info, int level,
                              int opt, const char *what) {
  napi_value argv[2];
  size_t argc;
  int fd, bytes;
  if (fd_args(env, info, argv, 2, &argc, &fd) < 0) return NULL;
  if (arg_int(env, argv, argc, 1, "bytes", &bytes) < 0) return NULL;
  if (setsockopt(fd, level, opt, &bytes, sizeof bytes) < 0)
    return throw_errno(env, what, errno);
  return NULL;
}

/* setSendBuffer(fd, bytes): SO_SNDBUF (the kernel doubles it for overhead). */
static napi_value set_send_buffer(napi_env env, napi_callback_info info) {
  return set_int_opt(env, info, SOL_SOCKET, SO_SNDBUF, "setsockopt SO_SNDBUF");
}

/* setRecvBuffer(fd, bytes): SO_RCVBUF (the kernel doubles it for overhead). */
static napi_value set_recv_buffer(napi_env env, napi_callback_info info) {
  return set_int_opt(env, info, SOL_SOCKET, SO_RCVBUF, "setsockopt SO_RCVBUF");
}

/* setNotSentLowat(fd, bytes): TCP_NOTSENT_LOWAT, bounds unsent bytes queued. */
static napi_value set_notsent_lowat(napi_env env, napi_callback_info info) {
  return set_int_opt(env, info, IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                     "setsockopt TCP_NOTSENT_LOWAT");
}

void sockopt_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tcpInfo", NULL, tcp_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setCongestion", NULL, set_congestion, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getCongestion", NULL, get_congestion, NULL, NULL, NULL, napi_enumerable, NULL},
      {"availableCongestion", NULL, available_congestion, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSendBuffer", NULL, set_send_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setRecvBuffer", NULL, set_recv_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNotSentLowat", NULL, set_notsent_lowat, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
