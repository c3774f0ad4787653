/*
 * dwcp_native, file operations beneath a directory: what Node's fs lacks to
 * confine a sink to its root without a check-then-use race.
 *
 * Paths are resolved by openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * | RESOLVE_NO_MAGICLINKS: no '..' above the starting directory, no symlink
 * anywhere (the last component included), in one kernel call, so a directory
 * swapped for a symlink between two calls cannot redirect either of them.
 * The *At functions act on one entry of an open directory (a single name,
 * never a path) and never follow a symlink.
 *
 * Every function runs on libuv's thread pool and returns a Promise, like
 * Node's fs: a slow or hung disk stalls one stream, not the event loop. A
 * failure rejects with an Error whose code is the errno name (ELOOP, EXDEV,
 * ENOENT ...), whose syscall names the call, and whose message reads
 * "<syscall> <path>: <strerror> (<code>)".
 *
 * Three calls do a small file's whole work in one job, because each job
 * costs a thread-pool round trip and a promise on the event loop (measured:
 * ~ten of them per small file were ~45 % of a destination agent's CPU):
 * writeWholeBeneath (create, write, mode, mtime, close), renameBeneath
 * (resolve the target's directory, rename into it) and readWholeBeneath
 * (open, fstat, read, fstat, close). renameManyBeneath does a checkpoint's
 * renameBeneath calls, in order, in one job.
 */
#define _GNU_SOURCE /* openat2 flags, renameat2, strerrorname_np, O_PATH */
#include "beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Resolution rules of every path walk here (see the file comment). */
#define BENEATH_RESOLVE \
  (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Directory levels removeAt/clearDirAt descend before refusing (one fd each). */
#define MAX_REMOVE_DEPTH 4096

/* Times removeAt empties a directory that is still not empty after a pass. */
#define MAX_CLEAR_PASSES 3

/* Longest relative path accepted (the kernel's PATH_MAX, NUL included). */
#define PATH_BYTES 4096
/* Longest single name accepted (NAME_MAX 255, NUL included). */
#define NAME_BYTES 256

/* Mode of a file writeWholeBeneath creates, until its fchmod sets the one asked for. */
#define WHOLE_CREATE_MODE 0600

/* Permission bits writeWholeBeneath sets (setuid, setgid, sticky included). */
#define WHOLE_MODE_MASK 07777

#define NS_PER_US 1000LL
#define US_PER_S 1000000LL

enum op_kind {
  OP_OPEN,
  OP_STAT,
  OP_MKDIR,
  OP_UNLINK,
  OP_REMOVE,
  OP_CLEAR,
  OP_RENAME,
  OP_SYNCFS,
  OP_WRITE_WHOLE,
  OP_RENAME_BENEATH,
  OP_READ_WHOLE,
  OP_RENAME_MANY,
};

/* One call in flight: arguments in, results out, owned by the async work. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  enum op_kind kind;
  int dirfd, dirfd2;
  int flags, mode;
  bool has_keep;
  char path[PATH_BYTES];
  char name2[NAME_BYTES];
  /* OP_RENAME_BENEATH: the target path beneath dirfd2; OP_READ_WHOLE: the root path. */
  char path2[PATH_BYTES];
  /* OP_WRITE_WHOLE: the bytes (data_ref keeps them alive) and the mtime. */
  const uint8_t *data;
  size_t data_len;
  napi_ref data_ref;
  int64_t mtime_us;
  /* OP_READ_WHOLE: read a regular file of at most this many bytes. */
  size_t max_bytes;
  /* OP_RENAME_MANY: count entries of dirfd (names, malloc'd) to paths beneath
     dirfd2 (malloc'd, written to while resolved), renamed in order. */
  char **names, **paths;
  size_t count;
  /* Results. */
  int fd;            /* OP_OPEN */
  bool missing;      /* OP_STAT, OP_REMOVE: the entry was not there */
  struct stat st;    /* OP_STAT, OP_READ_WHOLE (as opened) */
  uint8_t *buf;      /* OP_READ_WHOLE: the bytes read (malloc'd), NULL when not read */
  size_t buf_len;
  size_t renamed;    /* OP_RENAME_MANY: entries renamed before the first failure */
  bool changed;      /* OP_READ_WHOLE: short read, or another stat after the read */
  int err;           /* errno of the failed call, 0 on success */
  const char *syscall;
  const char *err_path; /* the path a failure names (default path) */
} fs_op;

static long sys_openat2(int dirfd, const char *path, struct open_how *how) {
  return syscall(SYS_openat2, dirfd, path, how, sizeof *how);
}

/* A single directory entry name: not empty, '.', '..', no '/'. */
static bool plain_name(const char *name) {
  return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
         strchr(name, '/') == NULL;
}

/* Remove everything inside the directory fd (consumed), never following a
   symlink; keep names the entry to leave in place (NULL: none). */
static int clear_fd(int fd, const char *keep, int depth, const char **syscall_out);

/* Remove the entry name of dirfd: a directory with all it holds, anything
   else with unlink. Sets *missing when there was nothing to remove. */
static int remove_entry(int dirfd, const char *name, int depth, bool *missing,
                        const char **syscall_out) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) {
      *missing = true;
      return 0;
    }
    *syscall_out = "fstatat";
    return errno;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
    *syscall_out = "unlinkat";
    return errno;
  }
  /* A directory: empty it through its own fd (O_NOFOLLOW: a directory
     swapped for a symlink since the fstatat fails here), then remove it.
     Another pass if it is not empty yet (an entry added meanwhile). */
  if (depth >= MAX_REMOVE_DEPTH) {
    *syscall_out = "remove (too deep)";
    return ELOOP;
  }
  for (int pass = 0; pass < MAX_CLEAR_PASSES; pass++) {
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return 0;
      *syscall_out = "openat";
      return errno;
    }
    int err = clear_fd(fd, NULL, depth + 1, syscall_out);
    if (err != 0) return err;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
    if (errno != ENOTEMPTY) break;
  }
  *syscall_out = "unlinkat";
  return errno;
}

static int clear_fd(int fd, const char *keep, int depth, const char **syscall_out) {
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    int err = errno;
    close(fd);
    *syscall_out = "fdopendir";
    return err;
  }
  /* Entries are removed while the directory is read (as rm -r does); one
     that readdir skips because of it leaves the directory non-empty, and
     remove_entry then runs another pass. */
  int err = 0;
  for (;;) {
    errno = 0;
    struct dirent *entry = readdir(dir);
    if (entry == NULL) {
      if (errno != 0) {
        err = errno;
        *syscall_out = "readdir";
      }
      break;
    }
    const char *name = entry->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    if (keep != NULL && strcmp(name, keep) == 0) continue;
    bool missing = false;
    err = remove_entry(dirfd(dir), name, depth, &missing, syscall_out);
    if (err != 0) break;
  }
  closedir(dir);
  return err;
}

/* Record a failure of syscall (errno) on the op. */
static void fail(fs_op *op, const char *syscall) {
  op->err = errno;
  op->syscall = syscall;
}

/* OP_WRITE_WHOLE: create path beneath dirfd as a new file (O_EXCL: never one
   found there, EEXIST instead), write every byte, set mode and mtime, close. A
   failure after the create leaves the file for the caller to remove (its
   temp area is cleared on recover). */
static void write_whole(fs_op *op) {
  struct open_how how = {
      .flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
      .mode = WHOLE_CREATE_MODE,
      .resolve = BENEATH_RESOLVE,
  };
  long opened = sys_openat2(op->dirfd, op->path, &how);
  if (opened < 0) return fail(op, "openat2");
  int fd = (int)opened;
  size_t done = 0;
  while (done < op->data_len) {
    ssize_t n = pwrite(fd, op->data + done, op->data_len - done, (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fail(op, "pwrite");
      break;
    }
    done += (size_t)n;
  }
  /* atime = mtime, as utimes(path, mtime, mtime). Floor division: mtimes before 1970 are negative. */
  int64_t sec = op->mtime_us / US_PER_S, us = op->mtime_us % US_PER_S;
  if (us < 0) {
    sec--;
    us += US_PER_S;
  }
  struct timespec times[2] = {{.tv_sec = sec, .tv_nsec = us * NS_PER_US}, {.tv_sec = sec, .tv_nsec = us * NS_PER_US}};
  if (op->err == 0 && fchmod(fd, (mode_t)(op->mode & WHOLE_MODE_MASK)) < 0) fail(op, "fchmod");
  if (op->err == 0 && futimens(fd, times) < 0) fail(op, "futimens");
  if (close(fd) < 0 && op->err == 0) fail(op, "close");
}

/* Rename the entry from of dirfd to path to beneath dirfd2, its directory
   resolved as openBeneath does; a directory at the target is removed first
   (rm -r, never through a link), as a file there is replaced. to is written
   to while its directory is resolved, and restored. Returns 0 or the errno,
   with *syscall_out naming the failed call. */
static int rename_one_beneath(int dirfd, const char *from, int dirfd2, char *to,
                              const char **syscall_out) {
  int parent = dirfd2;
  const char *name = to;
  char *slash = strrchr(to, '/');
  if (slash != NULL) {
    /* The directory part, resolved in one kernel call; the name stays one entry. */
    *slash = '\0';
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = BENEATH_RESOLVE};
    long fd = sys_openat2(dirfd2, to, &how);
    int open_err = errno;
    *slash = '/';
    if (fd < 0) {
      *syscall_out = "openat2";
      return open_err;
    }
    parent = (int)fd;
    name = slash + 1;
  }
  int err = 0;
  if (renameat2(dirfd, from, parent, name, 0) < 0) {
    err = errno;
    *syscall_out = "renameat2";
    if (err == EISDIR) {
      bool missing = false;
      err = remove_entry(parent, name, 0, &missing, syscall_out);
      if (err == 0 && renameat2(dirfd, from, parent, name, 0) < 0) {
        err = errno;
        *syscall_out = "renameat2";
      }
    }
  }
  if (parent != dirfd2) close(parent);
  return err;
}

/* OP_RENAME_BENEATH: rename the entry path of dirfd to path2 beneath dirfd2. */
static void rename_beneath(fs_op *op) {
  op->err = rename_one_beneath(op->dirfd, op->path, op->dirfd2, op->path2, &op->syscall);
}

/* OP_RENAME_MANY: each entry names[i] of dirfd to paths[i] beneath dirfd2, in
   order, as rename_beneath does; the first failure stops the batch (nothing
   after it is renamed, so names change in the caller's order) and names its
   target. */
static void rename_many(fs_op *op) {
  for (op->renamed = 0; op->renamed < op->count; op->renamed++) {
    size_t i = op->renamed;
    op->err = rename_one_beneath(op->dirfd, op->names[i], op->dirfd2, op->paths[i], &op->syscall);
    if (op->err != 0) {
      op->err_path = op->paths[i];
      return;
    }
  }
}

/* True when two stats are of the same file, untouched: inode, size, mtime, ctime, mode. */
static bool same_stat(const struct stat *a, const struct stat *b) {
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
         a->st_mode == b->st_mode;
}

/* OP_READ_WHOLE: open the root path2 (as given), path beneath it as
   openBeneath does (O_NONBLOCK: a fifo swapped in never blocks the pool),
   fstat; a regular file of at most max_bytes is read whole and fstat'ed
   again, changed when the read was short or the stats differ. */
static void read_whole(fs_op *op) {
  int root = open(op->path2, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    op->err_path = op->path2;
    return fail(op, "open");
  }
  struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, .resolve = BENEATH_RESOLVE};
  long opened = sys_openat2(root, op->path, &how);
  if (opened < 0) fail(op, "openat2");
  close(root);
  if (opened < 0) return;
  int fd = (int)opened;
  if (fstat(fd, &op->st) < 0) fail(op, "fstat");
  if (op->err == 0 && S_ISREG(op->st.st_mode) && op->st.st_size >= 0 && (size_t)op->st.st_size <= op->max_bytes) {
    size_t size = (size_t)op->st.st_size;
    op->buf = malloc(size > 0 ? size : 1);
    if (op->buf == NULL) {
      errno = ENOMEM;
      fail(op, "malloc");
    }
    while (op->err == 0 && op->buf_len < size) {
      ssize_t n = pread(fd, op->buf + op->buf_len, size - op->buf_len, (off_t)op->buf_len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(op, "pread");
      if (n <= 0) break;
      op->buf_len += (size_t)n;
    }
    struct stat after;
    if (op->err == 0 && fstat(fd, &after) < 0) fail(op, "fstat");
    op->changed = op->buf_len < size || (op->err == 0 && !same_stat(&op->st, &after));
  }
  close(fd);
}

/* Runs on the thread pool: the system calls of one op. */
static void execute(napi_env env, void *data) {
  (void)env;
  fs_op *op = data;
  switch (op->kind) {
    case OP_OPEN: {
      struct open_how how = {
          .flags = (unsigned)op->flags | O_CLOEXEC,
          .mode = (op->flags & O_CREAT) ? (unsigned)op->mode : 0,
          .resolve = BENEATH_RESOLVE,
      };
      long fd = sys_openat2(op->dirfd, op->path, &how);
      if (fd < 0) {
        op->err = errno;
        op->syscall = "openat2";
      } else {
        op->fd = (int)fd;
      }
      break;
    }
    case OP_STAT:
      if (fstatat(op->dirfd, op->path, &op->st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) op->missing = true;
        else {
          op->err = errno;
          op->syscall = "fstatat";
        }
      }
      break;
    case OP_MKDIR:
      if (mkdirat(op->dirfd, op->path, (mode_t)op->mode) < 0) {
        op->err = errno;
        op->syscall = "mkdirat";
      }
      break;
    case OP_UNLINK:
      if (unlinkat(op->dirfd, op->path, 0) < 0) {
        op->err = errno;
        op->syscall = "unlinkat";
      }
      break;
    case OP_REMOVE:
      op->err = remove_entry(op->dirfd, op->path, 0, &op->missing, &op->syscall);
      break;
    case OP_CLEAR: {
      /* A duplicate, because closedir closes the fd it reads. */
      int fd = fcntl(op->dirfd, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        op->err = errno;
        op->syscall = "fcntl F_DUPFD_CLOEXEC";
        break;
      }
      /* Read from the start whatever the caller did with the shared offset. */
      lseek(fd, 0, SEEK_SET);
      op->err = clear_fd(fd, op->has_keep ? op->path : NULL, 0, &op->syscall);
      break;
    }
    case OP_SYNCFS:
      /* Since Linux 5.8 it also reports writeback errors of the filesystem. */
      if (syncfs(op->dirfd) < 0) {
        op->err = errno;
        op->syscall = "syncfs";
      }
      break;
    case OP_RENAME:
      if (renameat2(op->dirfd, op->path, op->dirfd2, op->name2,
                    (unsigned)op->flags) < 0) {
        op->err = errno;
        op->syscall = "renameat2";
      }
      break;
    case OP_WRITE_WHOLE:
      write_whole(op);
      break;
    case OP_RENAME_BENEATH:
      op->err_path = op->path2;
      rename_beneath(op);
      break;
    case OP_READ_WHOLE:
      read_whole(op);
      break;
    case OP_RENAME_MANY:
      rename_many(op);
      break;
  }
}

/* A bigint from a signed 64-bit value (napi_create_bigint_int64). */
static napi_value bigint(napi_env env, int64_t v) {
  napi_value out;
  napi_create_bigint_int64(env, v, &out);
  return out;
}

/* The fields of a stat a file version needs, as bigints like BigIntStats. */
static napi_value stat_object(napi_env env, const struct stat *st) {
  napi_value out;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "mode", bigint(env, st->st_mode));
  napi_set_named_property(env, out, "size", bigint(env, st->st_size));
  napi_set_named_property(env, out, "mtimeNs",
                          bigint(env, (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec));
  return out;
}

/* A Buffer holding a copy of the bytes an op read: a Buffer of its own
   ArrayBuffer, which can be transferred to a worker thread (an external
   buffer cannot: DataCloneError in the HDE pool). */
static napi_value read_buffer(napi_env env, const fs_op *op) {
  napi_value out;
  void *copy;
  napi_create_buffer_copy(env, op->buf_len, op->buf, &copy, &out);
  return out;
}

/* Free an op and what it holds (the reference to the bytes it wrote, the
   bytes it read, the names it renamed). */
static void free_op(napi_env env, fs_op *op) {
  if (op->data_ref != NULL) napi_delete_reference(env, op->data_ref);
  free(op->buf);
  for (size_t i = 0; i < op->count; i++) {
    if (op->names != NULL) free(op->names[i]);
    if (op->paths != NULL) free(op->paths[i]);
  }
  free(op->names);
  free(op->paths);
  free(op);
}

/* The Error of a failed op: "<syscall> <name>: <strerror> (<code>)" with code
   and syscall set. */
static napi_value op_error(napi_env env, const fs_op *op) {
  const char *code_name = strerrorname_np(op->err);
  char msg[PATH_BYTES + 256];
  snprintf(msg, sizeof msg, "%s %s: %s (%s)", op->syscall, op->err_path ? op->err_path : op->path,
           strerror(op->err), code_name ? code_name : "?");
  napi_value result, code, message, syscall_name;
  napi_create_string_utf8(env, code_name ? code_name : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &result);
  napi_create_string_utf8(env, op->syscall, NAPI_AUTO_LENGTH, &syscall_name);
  napi_set_named_property(env, result, "syscall", syscall_name);
  return result;
}

/* OP_RENAME_MANY's outcome, errors as data: { renamed, error? }, error
   being the failure of entry `renamed` (none after it was tried). */
static napi_value rename_many_result(napi_env env, const fs_op *op) {
  napi_value result, renamed;
  napi_create_object(env, &result);
  napi_create_uint32(env, (uint32_t)op->renamed, &renamed);
  napi_set_named_property(env, result, "renamed", renamed);
  if (op->err != 0) napi_set_named_property(env, result, "error", op_error(env, op));
  return result;
}

/* Back on the JS thread: settle the Promise and free the op. */
static void complete(napi_env env, napi_status status, void *data) {
  fs_op *op = data;
  napi_value result = NULL;
  if (status != napi_ok && op->err == 0) {
    op->err = ECANCELED;
    op->syscall = "async work";
  }
  if (op->kind == OP_RENAME_MANY && status == napi_ok) {
    /* A failed entry is part of the outcome, not a rejection. */
    napi_resolve_deferred(env, op->deferred, rename_many_result(env, op));
  } else if (op->err != 0) {
    napi_reject_deferred(env, op->deferred, op_error(env, op));
  } else {
    switch (op->kind) {
      case OP_OPEN:
        napi_create_int32(env, op->fd, &result);
        break;
      case OP_STAT:
        if (op->missing) napi_get_undefined(env, &result);
        else result = stat_object(env, &op->st);
        break;
      case OP_READ_WHOLE: {
        /* The stat as opened; data only for a regular file within max_bytes. */
        result = stat_object(env, &op->st);
        napi_value changed;
        napi_get_boolean(env, op->changed, &changed);
        napi_set_named_property(env, result, "changed", changed);
        if (op->buf != NULL) napi_set_named_property(env, result, "data", read_buffer(env, op));
        break;
      }
      case OP_REMOVE:
        napi_get_boolean(env, !op->missing, &result);
        break;
      default:
        napi_get_undefined(env, &result);
        break;
    }
    napi_resolve_deferred(env, op->deferred, result);
  }
  napi_delete_async_work(env, op->work);
  free_op(env, op);
}

/* Read argument i as a non-negative int32 into *out; throws naming it. */
static bool int_arg(napi_env env, napi_value *argv, size_t argc, size_t i,
                    const char *what, int *out) {
  napi_valuetype type = napi_undefined;
  if (i < argc) napi_typeof(env, argv[i], &type);
  if (type == napi_number) napi_get_value_int32(env, argv[i], out);
  if (type != napi_number || *out < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a number >= 0", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

/* Read argument i as a string of less than size bytes; a name must be one
   plain entry name. Throws naming it. */
static bool str_arg(napi_env env, napi_value *argv, size_t argc, size_t i,
                    const char *what, char *out, size_t size, bool name) {
  napi_valuetype type = napi_undefined;
  if (i < argc) napi_typeof(env, argv[i], &type);
  size_t len = 0;
  if (type == napi_string) napi_get_value_string_utf8(env, argv[i], NULL, 0, &len);
  if (type != napi_string || len == 0 || len >= size) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string of 1..%zu bytes", what, size - 1);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  napi_get_value_string_utf8(env, argv[i], out, size, &len);
  if (strlen(out) != len || (name && !plain_name(out))) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be %s without NUL bytes", what,
             name ? "one entry name (not '.', '..', no '/')" : "a path");
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

/* Queue op on the thread pool and return its Promise (NULL after a throw). */
static napi_value start(napi_env env, fs_op *op) {
  napi_value promise, resource_name;
  napi_create_string_utf8(env, "dwcp:beneath", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, execute, complete, op, &op->work) != napi_ok ||
      napi_queue_async_work(env, op->work) != napi_ok) {
    free_op(env, op);
    napi_throw_error(env, NULL, "beneath: cannot queue async work");
    return NULL;
  }
  return promise;
}

/* Parse the common (dirFd, path-or-name) head of every call into a new op. */
static fs_op *new_op(napi_env env, napi_callback_info info, enum op_kind kind,
                     bool name, napi_value *argv, size_t max, size_t *argc) {
  *argc = max;
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  fs_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    napi_throw_error(env, NULL, "beneath: out of memory");
    return NULL;
  }
  op->kind = kind;
  if (!int_arg(env, argv, *argc, 0, "dirFd", &op->dirfd) ||
      !str_arg(env, argv, *argc, 1, name ? "name" : "path", op->path, PATH_BYTES, name)) {
    free(op);
    return NULL;
  }
  return op;
}

/* openBeneath(dirFd, path, flags, mode): fd of path resolved beneath dirFd. */
static napi_value open_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  fs_op *op = new_op(env, info, OP_OPEN, false, argv, 4, &argc);
  if (op == NULL) return NULL;
  if (!int_arg(env, argv, argc, 2, "flags", &op->flags) ||
      !int_arg(env, argv, argc, 3, "mode", &op->mode)) {
    free(op);
    return NULL;
  }
  return start(env, op);
}

/* statAt(dirFd, name): lstat of one entry, undefined when it is missing. */
static napi_value stat_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  fs_op *op = new_op(env, info, OP_STAT, true, argv, 2, &argc);
  return op ? start(env, op) : NULL;
}

/* mkdirAt(dirFd, name, mode). */
static napi_value mkdir_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc;
  fs_op *op = new_op(env, info, OP_MKDIR, true, argv, 3, &argc);
  if (op == NULL) return NULL;
  if (!int_arg(env, argv, argc, 2, "mode", &op->mode)) {
    free(op);
    return NULL;
  }
  return start(env, op);
}

/* unlinkAt(dirFd, name): remove a file or symlink (never a directory). */
static napi_value unlink_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  fs_op *op = new_op(env, info, OP_UNLINK, true, argv, 2, &argc);
  return op ? start(env, op) : NULL;
}

/* removeAt(dirFd, name): rm -r of one entry without following links. */
static napi_value remove_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  fs_op *op = new_op(env, info, OP_REMOVE, true, argv, 2, &argc);
  return op ? start(env, op) : NULL;
}

/* A new op of kind whose first argument is an fd (named what); NULL after a throw. */
static fs_op *new_fd_op(napi_env env, napi_callback_info info, enum op_kind kind,
                        const char *what, napi_value *argv, size_t *argc) {
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  fs_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    napi_throw_error(env, NULL, "beneath: out of memory");
    return NULL;
  }
  op->kind = kind;
  if (!int_arg(env, argv, *argc, 0, what, &op->dirfd)) {
    free(op);
    return NULL;
  }
  return op;
}

/* clearDirAt(dirFd, keep?): remove every entry of dirFd except keep. */
static napi_value clear_dir_at(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  fs_op *op = new_fd_op(env, info, OP_CLEAR, "dirFd", argv, &argc);
  if (op == NULL) return NULL;
  napi_valuetype keep_type = napi_undefined;
  if (argc > 1) napi_typeof(env, argv[1], &keep_type);
  op->has_keep = keep_type != napi_undefined && keep_type != napi_null;
  if (op->has_keep && !str_arg(env, argv, argc, 1, "keep", op->path, NAME_BYTES, true)) {
    free(op);
    return NULL;
  }
  if (!op->has_keep) strcpy(op->path, ".");
  return start(env, op);
}

/* renameAt(fromDirFd, fromName, toDirFd, toName, noReplace). */
static napi_value rename_at(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc;
  fs_op *op = new_op(env, info, OP_RENAME, true, argv, 5, &argc);
  if (op == NULL) return NULL;
  bool no_replace = false;
  if (argc > 4) napi_get_value_bool(env, argv[4], &no_replace);
  op->flags = no_replace ? RENAME_NOREPLACE : 0;
  if (!int_arg(env, argv, argc, 2, "toDirFd", &op->dirfd2) ||
      !str_arg(env, argv, argc, 3, "toName", op->name2, NAME_BYTES, true)) {
    free(op);
    return NULL;
  }
  return start(env, op);
}

/* syncFs(fd): syncfs(2) of the filesystem holding fd, one call for every
   file written there (instead of an fsync per file). */
static napi_value sync_fs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  fs_op *op = new_fd_op(env, info, OP_SYNCFS, "fd", argv, &argc);
  if (op == NULL) return NULL;
  strcpy(op->path, "(filesystem)");
  return start(env, op);
}

/* writeWholeBeneath(dirFd, path, data, mode, mtimeUs): a new file at path
   beneath dirFd (EEXIST when something is there) holding data, with mode and
   mtime (atime too), closed. */
static napi_value write_whole_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc;
  fs_op *op = new_op(env, info, OP_WRITE_WHOLE, false, argv, 5, &argc);
  if (op == NULL) return NULL;
  bool typed = false;
  napi_typedarray_type type = napi_int8_array;
  void *data = NULL;
  if (argc > 2) napi_is_typedarray(env, argv[2], &typed);
  if (typed) napi_get_typedarray_info(env, argv[2], &type, &op->data_len, &data, NULL, NULL);
  napi_valuetype mtime_type = napi_undefined;
  if (argc > 4) napi_typeof(env, argv[4], &mtime_type);
  if (!typed || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "data must be a Uint8Array");
  } else if (mtime_type != napi_number) {
    napi_throw_type_error(env, NULL, "mtimeUs must be a number");
  } else if (int_arg(env, argv, argc, 3, "mode", &op->mode)) {
    /* The bytes stay where they are, kept alive by a reference until the job is done. */
    op->data = data;
    napi_get_value_int64(env, argv[4], &op->mtime_us);
    if (napi_create_reference(env, argv[2], 1, &op->data_ref) == napi_ok) return start(env, op);
    napi_throw_error(env, NULL, "writeWholeBeneath: cannot keep a reference to data");
  }
  free_op(env, op);
  return NULL;
}

/* renameBeneath(fromDirFd, fromName, toDirFd, toPath): the entry fromName
   to toPath, whose directory is resolved beneath toDirFd as openBeneath does. */
static napi_value rename_beneath_fn(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  fs_op *op = new_op(env, info, OP_RENAME_BENEATH, true, argv, 4, &argc);
  if (op == NULL) return NULL;
  if (!int_arg(env, argv, argc, 2, "toDirFd", &op->dirfd2) ||
      !str_arg(env, argv, argc, 3, "toPath", op->path2, PATH_BYTES, false)) {
    free_op(env, op);
    return NULL;
  }
  /* The last segment is the entry renamed to: one plain name, never resolved. */
  const char *slash = strrchr(op->path2, '/');
  if (!plain_name(slash ? slash + 1 : op->path2) || slash == op->path2) {
    napi_throw_type_error(env, NULL, "toPath must end in one entry name (not '.', '..', no trailing '/') below toDirFd");
    free_op(env, op);
    return NULL;
  }
  return start(env, op);
}

/* Copy the string v into a new malloc'd *out of less than size bytes; a
   name must be one plain entry name, a target path must end in one. Throws
   naming what[index]. */
static bool str_element(napi_env env, napi_value v, const char *what, uint32_t index,
                        size_t size, bool name, char **out) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, v, &type);
  size_t len = 0;
  if (type == napi_string) napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char msg[160];
  if (type != napi_string || len == 0 || len >= size) {
    snprintf(msg, sizeof msg, "%s[%u] must be a string of 1..%zu bytes", what, index, size - 1);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *out = malloc(len + 1);
  if (*out == NULL) {
    napi_throw_error(env, NULL, "beneath: out of memory");
    return false;
  }
  napi_get_value_string_utf8(env, v, *out, len + 1, &len);
  const char *slash = strrchr(*out, '/');
  bool plain = name ? plain_name(*out) : plain_name(slash ? slash + 1 : *out) && slash != *out;
  if (strlen(*out) != len || !plain) {
    snprintf(msg, sizeof msg, "%s[%u] must be %s without NUL bytes", what, index,
             name ? "one entry name (not '.', '..', no '/')" : "a path ending in one entry name");
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

/* renameManyBeneath(fromDirFd, fromNames, toDirFd, toPaths): renameBeneath of
   each fromNames[i] to toPaths[i], in order, in one job; stops at the first
   failure. Resolves to { renamed, error? }. */
static napi_value rename_many_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  fs_op *op = NULL;
  size_t argc = 4;
  op = new_fd_op(env, info, OP_RENAME_MANY, "fromDirFd", argv, &argc);
  if (op == NULL) return NULL;
  if (!int_arg(env, argv, argc, 2, "toDirFd", &op->dirfd2)) goto fail;
  bool names_array = false, paths_array = false;
  if (argc > 1) napi_is_array(env, argv[1], &names_array);
  if (argc > 3) napi_is_array(env, argv[3], &paths_array);
  uint32_t n = 0, n_paths = 0;
  if (names_array) napi_get_array_length(env, argv[1], &n);
  if (paths_array) napi_get_array_length(env, argv[3], &n_paths);
  if (!names_array || !paths_array || n != n_paths) {
    napi_throw_type_error(env, NULL, "fromNames and toPaths must be arrays of the same length");
    goto fail;
  }
  op->names = calloc(n > 0 ? n : 1, sizeof *op->names);
  op->paths = calloc(n > 0 ? n : 1, sizeof *op->paths);
  if (op->names == NULL || op->paths == NULL) {
    napi_throw_error(env, NULL, "beneath: out of memory");
    goto fail;
  }
  /* count grows with each entry copied, so free_op frees exactly those. */
  for (uint32_t i = 0; i < n; i++, op->count++) {
    napi_value name, path;
    napi_get_element(env, argv[1], i, &name);
    napi_get_element(env, argv[3], i, &path);
    if (!str_element(env, name, "fromNames", i, NAME_BYTES, true, &op->names[i]) ||
        !str_element(env, path, "toPaths", i, PATH_BYTES, false, &op->paths[i])) {
      op->count++; /* the entry's strings (either may be set) are freed too */
      goto fail;
    }
  }
  strcpy(op->path, "(batch)");
  return start(env, op);
fail:
  free_op(env, op);
  return NULL;
}

/* readWholeBeneath(root, path, maxBytes): the stat of path beneath the
   directory root, and its bytes when it is a regular file of at most
   maxBytes, read in one job. */
static napi_value read_whole_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fs_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    napi_throw_error(env, NULL, "beneath: out of memory");
    return NULL;
  }
  op->kind = OP_READ_WHOLE;
  int max_bytes = 0;
  if (!str_arg(env, argv, argc, 0, "root", op->path2, PATH_BYTES, false) ||
      !str_arg(env, argv, argc, 1, "path", op->path, PATH_BYTES, false) ||
      !int_arg(env, argv, argc, 2, "maxBytes", &max_bytes)) {
    free_op(env, op);
    return NULL;
  }
  op->max_bytes = (size_t)max_bytes;
  return start(env, op);
}

void beneath_register(napi_env env, napi_value exports) {
  napi_value o_path;
  napi_create_int32(env, O_PATH, &o_path);
  napi_property_descriptor props[] = {
      {"openBeneath", NULL, open_beneath, NULL, NULL, NULL, napi_enumerable, NULL},
      {"statAt", NULL, stat_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkdirAt", NULL, mkdir_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlinkAt", NULL, unlink_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeAt", NULL, remove_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"clearDirAt", NULL, clear_dir_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"renameAt", NULL, rename_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"syncFs", NULL, sync_fs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeWholeBeneath", NULL, write_whole_beneath, NULL, NULL, NULL, napi_enumerable, NULL},
      {"renameBeneath", NULL, rename_beneath_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readWholeBeneath", NULL, read_whole_beneath, NULL, NULL, NULL, napi_enumerable, NULL},
      {"renameManyBeneath", NULL, rename_many_beneath, NULL, NULL, NULL, napi_enumerable, NULL},
      {"O_PATH", NULL, NULL, NULL, NULL, o_path, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
