// bootbox's zero-copy file sender: sendfile(2) from a file to a socket on a thread of
// its own, so file bodies go from the page cache to the socket without being copied
// through the JavaScript heap.
//
//   const job = sendfile(socketFd, fileFd, offset, length, (err, bytesSent) => {}, idleTimeoutMs?)
//   job.abort()   // the thread stops at its next step; the callback still runs once
//
// - One thread per call, never libuv's threadpool (fs needs it). All signals are
//   blocked on that thread: they stay with Node's main thread.
// - Both descriptors are duplicated before the call returns: the thread works on its
//   own copies, so Node closing (and the kernel reusing) the originals mid-transfer
//   can never make the thread write into another file. The copies (and the job's
//   eventfd) are closed before the callback runs.
// - The socket stays non-blocking (libuv made it so, and the file description is
//   shared with Node): on EAGAIN the thread waits in poll(POLLOUT) together with an
//   eventfd that abort() signals. No progress for idleTimeoutMs (default 60 s) fails
//   the call with ETIMEDOUT.
// - The callback gets (null, bytesSent) once `length` bytes are in the socket, or
//   (err, bytesSent) with err.code = the errno name (EPIPE, ECONNRESET, EIO, ...),
//   "EOF" when the file ended before offset + length, "ETIMEDOUT" on the idle
//   timeout, "ECANCELED" after abort(). err.bytesSent repeats the count.
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <mutex>

namespace {

// Linux transfers at most 0x7ffff000 bytes per sendfile(2) call (sendfile(2), NOTES).
constexpr int64_t kMaxPerCall = 1 << 30;
constexpr int64_t kDefaultIdleMs = 60000;
constexpr size_t kThreadStack = 256 * 1024;

enum class Outcome { kDone, kErrno, kEof, kTimeout, kAborted };

struct Job {
  // One reference for the thread (released once the callback has run or cannot run),
  // one for the JavaScript abort function (released when it is garbage-collected).
  std::atomic<int> refs{2};
  std::atomic<bool> aborted{false};
  // Signalled by abort() to wake the thread from poll(); closed (under the mutex) as soon
  // as the transfer is over, so every descriptor of the job is gone before the callback.
  std::mutex wake_mutex;
  int wake_fd = -1;
  int sock = -1;
  int file = -1;
  int64_t offset = 0;
  int64_t length = 0;
  int64_t idle_ms = kDefaultIdleMs;
  napi_threadsafe_function tsfn = nullptr;
  int64_t sent = 0;
  Outcome outcome = Outcome::kDone;
  int err = 0;
};

void CloseWake(Job* job) {
  std::lock_guard<std::mutex> lock(job->wake_mutex);
  if (job->wake_fd >= 0) close(job->wake_fd);
  job->wake_fd = -1;
}

void Unref(Job* job) {
  if (job->refs.fetch_sub(1) == 1) {
    CloseWake(job);
    delete job;
  }
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits until the socket takes more bytes. Returns true to try sendfile again, false
// when the job is over (outcome set).
bool WaitWritable(Job* job, int64_t idle_since) {
  for (;;) {
    if (job->aborted.load()) {
      job->outcome = Outcome::kAborted;
      return false;
    }
    int64_t left = job->idle_ms - (NowMs() - idle_since);
    if (left <= 0) {
      job->outcome = Outcome::kTimeout;
      return false;
    }
    pollfd fds[2] = {{job->sock, POLLOUT, 0}, {job->wake_fd, POLLIN, 0}};
    int r = poll(fds, 2, left > INT32_MAX ? INT32_MAX : static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      job->outcome = Outcome::kErrno;
      job->err = errno;
      return false;
    }
    if (r == 0 || fds[1].revents) continue;  // timeout or abort: checked at the top
    short ev = fds[0].revents;
    if (ev & POLLNVAL) {
      job->outcome = Outcome::kErrno;
      job->err = EBADF;
      return false;
    }
    if (ev & POLLOUT) return true;
    if (ev & (POLLERR | POLLHUP)) {
      int so_error = 0;
      socklen_t len = sizeof so_error;
      getsockopt(job->sock, SOL_SOCKET, SO_ERROR, &so_error, &len);
      job->outcome = Outcome::kErrno;
      job->err = so_error ? so_error : EPIPE;
      return false;
    }
  }
}

void Transfer(Job* job) {
  off_t off = static_cast<off_t>(job->offset);
  int64_t left = job->length;
  int64_t idle_since = NowMs();
  while (left > 0) {
    if (job->aborted.load()) {
      job->outcome = Outcome::kAborted;
      return;
    }
    size_t count = static_cast<size_t>(left < kMaxPerCall ? left : kMaxPerCall);
    ssize_t n = sendfile(job->sock, job->file, &off, count);
    if (n > 0) {
      job->sent += n;
      left -= n;
      idle_since = NowMs();
      continue;
    }
    if (n == 0) {
      job->outcome = Outcome::kEof;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitWritable(job, idle_since)) return;
      continue;
    }
    job->outcome = Outcome::kErrno;
    job->err = errno;
    return;
  }
  job->outcome = Outcome::kDone;
}

void SetCork(int sock, int on) {
  // Fails harmlessly (ENOPROTOOPT) on a socket that is not TCP.
  setsockopt(sock, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

void* ThreadMain(void* arg) {
  Job* job = static_cast<Job*>(arg);
  // Full segments only while the body streams (as nginx's tcp_nopush); taking the cork
  // off at the end sends the last partial segment at once, whatever TCP_NODELAY says.
  SetCork(job->sock, 1);
  Transfer(job);
  SetCork(job->sock, 0);
  close(job->sock);
  close(job->file);
  job->sock = job->file = -1;
  CloseWake(job);
  napi_threadsafe_function tsfn = job->tsfn;
  // On napi_ok the callback (CallJs) owns the thread's reference, even if the
  // environment goes away first (it is then called with env == NULL).
  if (napi_call_threadsafe_function(tsfn, job, napi_tsfn_blocking) != napi_ok) Unref(job);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return nullptr;
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

void SetNumber(napi_env env, napi_value obj, const char* key, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) == napi_ok) napi_set_named_property(env, obj, key, n);
}

void CallJs(napi_env env, napi_value callback, void* /*context*/, void* data) {
  Job* job = static_cast<Job*>(data);
  if (env != nullptr && callback != nullptr) {
    napi_value argv[2];
    napi_create_double(env, static_cast<double>(job->sent), &argv[1]);
    if (job->outcome == Outcome::kDone) {
      napi_get_null(env, &argv[0]);
    } else {
      char msg[200];
      const char* code = "EOF";
      switch (job->outcome) {
        case Outcome::kEof:
          snprintf(msg, sizeof msg, "the file ended at byte %lld, before the %lld bytes asked for",
                   static_cast<long long>(job->offset + job->sent),
                   static_cast<long long>(job->offset + job->length));
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
      napi_value code_v, msg_v;
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
      napi_create_error(env, code_v, msg_v, &argv[0]);
      SetNumber(env, argv[0], "bytesSent", static_cast<double>(job->sent));
      if (job->outcome == Outcome::kErrno) SetNumber(env, argv[0], "errno", -job->err);
    }
    napi_value global;
    napi_get_global(env, &global);
    // An exception thrown by the callback surfaces as Node's uncaught exception.
    napi_call_function(env, global, callback, 2, argv, nullptr);
  }
  Unref(job);
}

napi_value Abort(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  if (!Check(env, napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data))) return nullptr;
  Job* job = static_cast<Job*>(data);
  if (!job->aborted.exchange(true)) {
    std::lock_guard<std::mutex> lock(job->wake_mutex);
    if (job->wake_fd >= 0) {
      uint64_t one = 1;
      ssize_t ignored = write(job->wake_fd, &one, sizeof one);
      (void)ignored;
    }
  }
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

  Job* job = new Job();
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
  if (job->file >= 0) {
    job->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err = errno;
  }
  if (job->file < 0 || job->wake_fd < 0) {
    const char* what = job->file < 0 ? "fileFd" : "eventfd";
    close(job->sock);
    if (job->file >= 0) close(job->file);
    delete job;
    return ThrowErrno(env, what, err);
  }

  auto fail = [&](napi_status status) {
    close(job->sock);
    close(job->file);
    close(job->wake_fd);
    delete job;
    Check(env, status);
    return nullptr;
  };
  napi_value name;
  napi_status status = napi_create_string_utf8(env, "bootbox.sendfile", NAPI_AUTO_LENGTH, &name);
  if (status != napi_ok) return fail(status);
  status = napi_create_threadsafe_function(env, argv[4], nullptr, name, 0, 1, nullptr, nullptr, nullptr, CallJs,
                                           &job->tsfn);
  if (status != napi_ok) return fail(status);
  napi_value abort_fn, handle;
  if ((status = napi_create_function(env, "abort", NAPI_AUTO_LENGTH, Abort, job, &abort_fn)) != napi_ok ||
      (status = napi_create_object(env, &handle)) != napi_ok ||
      (status = napi_set_named_property(env, handle, "abort", abort_fn)) != napi_ok) {
    napi_release_threadsafe_function(job->tsfn, napi_tsfn_abort);
    return fail(status);
  }

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kThreadStack);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the new thread starts with every signal blocked
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, ThreadMain, job);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(job->tsfn, napi_tsfn_abort);
    close(job->sock);
    close(job->file);
    close(job->wake_fd);
    delete job;
    return ThrowErrno(env, "cannot start a thread", rc);
  }
  // From here the abort function holds the second reference.
  if (napi_add_finalizer(env, abort_fn, job, FinalizeAbort, nullptr, nullptr) != napi_ok) {
    // Without a finalizer the reference would never be dropped: leak the Job (a few
    // bytes and one eventfd) rather than risk a use after free.
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
