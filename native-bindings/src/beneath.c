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
 * "<syscall> <name>: <strerror> (<code>)".
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

enum op_kind {
  OP_OPEN,
  OP_STAT,
  OP_MKDIR,
  OP_UNLINK,
  OP_REMOVE,
  OP_CLEAR,
  OP_RENAME,
  OP_SYNCFS,
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
  /* Results. */
  int fd;            /* OP_OPEN */
  bool missing;      /* OP_STAT, OP_REMOVE: the entry was not there */
  struct stat st;    /* OP_STAT */
  int err;           /* errno of the failed call, 0 on success */
  const char *syscall;
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
  }
}

/* A bigint from a signed 64-bit value (napi_create_bigint_int64). */
static napi_value bigint(napi_env env, int64_t v) {
  napi_value out;
  napi_create_bigint_int64(env, v, &out);
  return out;
}

/* Back on the JS thread: settle the Promise and free the op. */
static void complete(napi_env env, napi_status status, void *data) {
  fs_op *op = data;
  napi_value result = NULL;
  if (status != napi_ok && op->err == 0) {
    op->err = ECANCELED;
    op->syscall = "async work";
  }
  if (op->err != 0) {
    /* Error: "<syscall> <name>: <strerror>" with code and syscall set. */
    const char *code_name = strerrorname_np(op->err);
    char msg[PATH_BYTES + 256];
    snprintf(msg, sizeof msg, "%s %s: %s (%s)", op->syscall, op->path, strerror(op->err),
             code_name ? code_name : "?");
    napi_value code, message, syscall_name;
    napi_create_string_utf8(env, code_name ? code_name : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &result);
    napi_create_string_utf8(env, op->syscall, NAPI_AUTO_LENGTH, &syscall_name);
    napi_set_named_property(env, result, "syscall", syscall_name);
    napi_reject_deferred(env, op->deferred, result);
  } else {
    switch (op->kind) {
      case OP_OPEN:
        napi_create_int32(env, op->fd, &result);
        break;
      case OP_STAT:
        if (op->missing) {
          napi_get_undefined(env, &result);
        } else {
          /* The fields a file version needs, as bigints like BigIntStats. */
          napi_create_object(env, &result);
          napi_set_named_property(env, result, "mode", bigint(env, op->st.st_mode));
          napi_set_named_property(env, result, "size", bigint(env, op->st.st_size));
          napi_set_named_property(
              env, result, "mtimeNs",
              bigint(env, (int64_t)op->st.st_mtim.tv_sec * 1000000000LL + op->st.st_mtim.tv_nsec));
        }
        break;
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
  free(op);
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
    free(op);
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
      {"O_PATH", NULL, NULL, NULL, NULL, o_path, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
