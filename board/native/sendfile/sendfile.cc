// bootbox's zero-copy file sender: sendfile(2) from a file to a socket, driven by the
// Node event loop (as nginx sends from its event loop), so file bodies go from the page
// cache to the socket without being copied through the JavaScript heap.
//
//   const job = sendfile(socketFd, fileFd, offset, length, (err, bytesSent) => {}, idleTimeoutMs?)
//   job.abort()   // the transfer stops at once; the callback still runs once
//
// - No threads: a uv_poll watcher on the socket calls sendfile(2) (non-blocking) while
//   the socket is writable, until EAGAIN or at most kBudgetPerWake bytes per wake-up, so
//   the loop is never held long. Sending and the peer's ACK processing then stay in the
//   order one thread gives them, which keeps loopback segments from being reordered.
// - Both descriptors are duplicated before the call returns: the watcher works on its
//   own copies, so Node closing (and the kernel reusing) the originals mid-transfer can
//   never make it write into another file. epoll accepts the duplicate of a socket that
//   Node's own handle has registered (a different descriptor number). The copies are
//   closed before the callback runs.
// - The socket stays non-blocking (libuv made it so, and the file description is shared
//   with Node). No progress for idleTimeoutMs (default 60 s) fails the call with ETIMEDOUT.
// - The callback gets (null, bytesSent) once `length` bytes are in the socket, or
//   (err, bytesSent) with err.code = the errno name (EPIPE, ECONNRESET, EIO, ...),
//   "EOF" when the file ended before offset + length, "ETIMEDOUT" on the idle
//   timeout, "ECANCELED" after abort(). err.bytesSent repeats the count. The callback
//   always runs from the loop, never from inside sendfile() or abort().
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

namespace {

// Linux transfers at most 0x7ffff000 bytes per sendfile(2) call (sendfile(2), NOTES).
constexpr int64_t kMaxPerCall = 1 << 30;
// At most this many bytes per wake-up of the watcher, so other work on the loop waits
// for a few milliseconds at worst; the watcher fires again on the next loop iteration
// when the socket is still writable (level-triggered).
constexpr int64_t kBudgetPerWake = 8 * 1024 * 1024;
constexpr int64_t kDefaultIdleMs = 60000;

enum class Outcome { kDone, kErrno, kEof, kTimeout, kAborted };

struct Job {
  // One reference for the transfer (released once the callback has run or cannot run),
  // one for the JavaScript abort function (released when it is garbage-collected).
  int refs = 2;
  napi_env env = nullptr;
  // False once the environment is being torn down: the callback is then never called.
  bool env_alive = true;
  napi_ref callback = nullptr;
  napi_async_context async_context = nullptr;
  uv_poll_t poll;
  uv_timer_t timer;
  // Handles not yet closed; the job ends when the last close callback has run.
  int open_handles = 0;
  bool finished = false;
  int sock = -1;
  int file = -1;
  int64_t offset = 0;
  int64_t length = 0;
  int64_t idle_ms = kDefaultIdleMs;
  int64_t sent = 0;
  Outcome outcome = Outcome::kDone;
  int err = 0;
};

void Unref(Job* job) {
  if (--job->refs == 0) delete job;
}

void SetCork(int sock, int on) {
  // Fails harmlessly (ENOPROTOOPT) on a socket that is not TCP.
  setsockopt(sock, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

void ReleaseJs(Job* job) {
  if (job->callback != nullptr) napi_delete_reference(job->env, job->callback);
  if (job->async_context != nullptr) napi_async_destroy(job->env, job->async_context);
  job->callback = nullptr;
  job->async_context = nullptr;
}

void SetNumber(napi_env env, napi_value obj, const char* key, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) == napi_ok) napi_set_named_property(env, obj, key, n);
}

napi_value MakeError(napi_env env, Job* job) {
  char msg[200];
  const char* code = "EOF";
  switch (job->outcome) {
    case Outcome::kEof:
      snprintf(msg, sizeof msg, "the file ended at byte %lld, before the %lld bytes asked for",
               static_cast<long long>(job->offset + job->sent), static_cast<long long>(job->offset + job->length));
      break;
    case Outcome::kTimeout:
      code = "ETIMEDOUT";
      snprintf(msg, sizeof msg, "the socket took no bytes for %lld ms", static_cast<long long>(job->idle_ms));
      break;
    case Outcome::kAborted:
      code = "ECANCELED";
      snprintf(msg, sizeof msg, "aborted after %lld bytes", static_cast<long long>(job->sent));
      break;
    default:
      code = uv_err_name(-job->err);
      snprintf(msg, sizeof msg, "sendfile failed after %lld bytes: %s", static_cast<long long>(job->sent),
               strerror(job->err));
      break;
  }
  napi_value code_v, msg_v, error = nullptr;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  SetNumber(env, error, "bytesSent", static_cast<double>(job->sent));
  if (job->outcome == Outcome::kErrno) SetNumber(env, error, "errno", -job->err);
  return error;
}

// Runs on the loop thread, outside any JavaScript frame: opens its own handle scope and
// enters JavaScript through napi_make_callback (async hooks, then the microtask and
// nextTick queues run as after any other I/O callback).
void CallJs(Job* job) {
  napi_env env = job->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback = nullptr, global, argv[2];
  if (napi_get_reference_value(env, job->callback, &callback) == napi_ok && callback != nullptr &&
      napi_get_global(env, &global) == napi_ok) {
    napi_create_double(env, static_cast<double>(job->sent), &argv[1]);
    if (job->outcome == Outcome::kDone) {
      napi_get_null(env, &argv[0]);
    } else {
      argv[0] = MakeError(env, job);
    }
    napi_make_callback(env, job->async_context, global, callback, 2, argv, nullptr);
    // An exception thrown by the callback surfaces as Node's uncaught exception.
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

void CleanupHook(void* arg);

void OnClosed(uv_handle_t* handle) {
  Job* job = static_cast<Job*>(handle->data);
  if (--job->open_handles > 0) return;
  close(job->sock);
  close(job->file);
  job->sock = job->file = -1;
  if (job->env_alive) {
    napi_remove_env_cleanup_hook(job->env, CleanupHook, job);
    CallJs(job);
    ReleaseJs(job);
  }
  Unref(job);
}

// Ends the transfer: stops and closes both handles; the callback runs once they are closed.
void Finish(Job* job, Outcome outcome, int err) {
  if (job->finished) return;
  job->finished = true;
  job->outcome = outcome;
  job->err = err;
  // Taking the cork off sends the last partial segment at once, whatever TCP_NODELAY says.
  SetCork(job->sock, 0);
  uv_poll_stop(&job->poll);
  uv_timer_stop(&job->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&job->poll), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&job->timer), OnClosed);
}

// The environment is going away with the transfer still running (a worker ends): stop it
// without calling JavaScript.
void CleanupHook(void* arg) {
  Job* job = static_cast<Job*>(arg);
  ReleaseJs(job);
  job->env_alive = false;
  Finish(job, Outcome::kAborted, 0);
}

void OnIdle(uv_timer_t* timer) { Finish(static_cast<Job*>(timer->data), Outcome::kTimeout, 0); }

void OnWritable(uv_poll_t* poll, int status, int /*events*/) {
  Job* job = static_cast<Job*>(poll->data);
  if (job->finished) return;
  if (status < 0) {
    // libuv reports a socket error (POLLERR) as UV_EBADF and stops watching: the
    // socket's own error names it (ECONNRESET, EPIPE, ...).
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(job->sock, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error == 0) so_error = EPIPE;
    Finish(job, Outcome::kErrno, so_error);
    return;
  }
  int64_t budget = kBudgetPerWake;
  bool progress = false;
  while (job->sent < job->length && budget > 0) {
    int64_t count = job->length - job->sent;
    if (count > budget) count = budget;
    if (count > kMaxPerCall) count = kMaxPerCall;
    off_t off = static_cast<off_t>(job->offset + job->sent);
    ssize_t n = sendfile(job->sock, job->file, &off, static_cast<size_t>(count));
    if (n > 0) {
      job->sent += n;
      budget -= n;
      progress = true;
      continue;
    }
    if (n == 0) {
      Finish(job, Outcome::kEof, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Finish(job, Outcome::kErrno, errno);
    return;
  }
  if (job->sent >= job->length) {
    Finish(job, Outcome::kDone, 0);
    return;
  }
  if (progress) uv_timer_start(&job->timer, OnIdle, static_cast<uint64_t>(job->idle_ms), 0);
}

// ---- JavaScript side ------------------------------------------------------------

bool Check(napi_env env, napi_status status) {
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_SENDFILE_NAPI", "sendfile: a Node-API call failed");
  return false;
}

napi_value ThrowErrno(napi_env env, const char* what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "sendfile: %s: %s", what, strerror(err));
  napi_throw_error(env, uv_err_name(-err), msg);
  return nullptr;
}

napi_value Abort(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  if (!Check(env, napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data))) return nullptr;
  Finish(static_cast<Job*>(data), Outcome::kAborted, 0);
  return nullptr;
}

void FinalizeAbort(napi_env /*env*/, void* data, void* /*hint*/) { Unref(static_cast<Job*>(data)); }

bool GetInteger(napi_env env, napi_value v, const char* name, int64_t min, int64_t max, int64_t* out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      d != static_cast<double>(static_cast<int64_t>(d)) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    char msg[120];
    snprintf(msg, sizeof msg, "sendfile: %s must be an integer from %lld to %lld", name, static_cast<long long>(min),
             static_cast<long long>(max));
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

napi_value SendFile(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (!Check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr))) return nullptr;
  if (argc < 5) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS",
                          "sendfile(socketFd, fileFd, offset, length, callback, idleTimeoutMs?)");
    return nullptr;
  }
  constexpr int64_t kMaxSafe = (int64_t{1} << 53) - 1;
  int64_t sock, file, offset, length, idle = kDefaultIdleMs;
  if (!GetInteger(env, argv[0], "socketFd", 0, INT32_MAX, &sock) ||
      !GetInteger(env, argv[1], "fileFd", 0, INT32_MAX, &file) ||
      !GetInteger(env, argv[2], "offset", 0, kMaxSafe, &offset) ||
      !GetInteger(env, argv[3], "length", 0, kMaxSafe, &length))
    return nullptr;
  napi_valuetype type;
  if (!Check(env, napi_typeof(env, argv[4], &type))) return nullptr;
  if (type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendfile: callback must be a function");
    return nullptr;
  }
  if (argc > 5) {
    if (!Check(env, napi_typeof(env, argv[5], &type))) return nullptr;
    if (type != napi_undefined && !GetInteger(env, argv[5], "idleTimeoutMs", 1, INT32_MAX, &idle)) return nullptr;
  }
  uv_loop_t* loop = nullptr;
  if (!Check(env, napi_get_uv_event_loop(env, &loop))) return nullptr;

  Job* job = new Job();
  job->env = env;
  job->offset = offset;
  job->length = length;
  job->idle_ms = idle;
  job->sock = fcntl(static_cast<int>(sock), F_DUPFD_CLOEXEC, 0);
  int err = errno;
  if (job->sock < 0) {
    delete job;
    return ThrowErrno(env, "socketFd", err);
  }
  job->file = fcntl(static_cast<int>(file), F_DUPFD_CLOEXEC, 0);
  err = errno;
  if (job->file < 0) {
    close(job->sock);
    delete job;
    return ThrowErrno(env, "fileFd", err);
  }
  auto drop = [&]() {
    ReleaseJs(job);
    close(job->sock);
    close(job->file);
    delete job;
  };

  napi_value name, abort_fn, handle;
  napi_status status;
  if ((status = napi_create_string_utf8(env, "bootbox.sendfile", NAPI_AUTO_LENGTH, &name)) != napi_ok ||
      (status = napi_create_object(env, &handle)) != napi_ok ||
      (status = napi_async_init(env, handle, name, &job->async_context)) != napi_ok ||
      (status = napi_create_reference(env, argv[4], 1, &job->callback)) != napi_ok ||
      (status = napi_create_function(env, "abort", NAPI_AUTO_LENGTH, Abort, job, &abort_fn)) != napi_ok ||
      (status = napi_set_named_property(env, handle, "abort", abort_fn)) != napi_ok) {
    drop();
    Check(env, status);
    return nullptr;
  }

  int rc = uv_poll_init(loop, &job->poll, job->sock);
  if (rc != 0) {
    drop();
    return ThrowErrno(env, "socketFd", -rc);
  }
  job->poll.data = job;
  uv_timer_init(loop, &job->timer);  // cannot fail
  job->timer.data = job;
  job->open_handles = 2;
  // From here the job ends through Finish() and the close callbacks, never by delete.
  // Full segments only while the body streams (as nginx's tcp_nopush).
  SetCork(job->sock, 1);
  rc = length == 0 ? 0 : uv_poll_start(&job->poll, UV_WRITABLE, OnWritable);
  if (length == 0) {
    Finish(job, Outcome::kDone, 0);  // the callback still runs from the loop
  } else if (rc == 0) {
    uv_timer_start(&job->timer, OnIdle, static_cast<uint64_t>(idle), 0);
  } else {
    Finish(job, Outcome::kErrno, -rc);  // the callback reports it, from the loop
  }
  napi_add_env_cleanup_hook(env, CleanupHook, job);
  // From here the abort function holds the second reference.
  if (napi_add_finalizer(env, abort_fn, job, FinalizeAbort, nullptr, nullptr) != napi_ok) {
    // Without a finalizer the reference would never be dropped: leak the Job (a few
    // hundred bytes) rather than risk a use after free.
  }
  return handle;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (!Check(env, napi_create_function(env, "sendfile", NAPI_AUTO_LENGTH, SendFile, nullptr, &fn))) return nullptr;
  if (!Check(env, napi_set_named_property(env, exports, "sendfile", fn))) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
