/*
 * The script helper, compiled (tools/build-native.sh; the release carries it as
 * libexec/script-helper). The same process and the same protocol as the Perl program in
 * spawner.ts, which runs where this binary is missing: see spawner.ts for the design and the
 * requests and answers. Compiled, a fork copies far less than Perl's, and the held child's exec
 * tears down as little: a no-op 5-script backup took 47-50 ms instead of 71 (the Go agent's 30,
 * same hour), and the helper and a held child hold ~1.6 and ~0.8 MB beside a running dump
 * instead of 5.6 and 1.8 (docs/PERFORMANCE.md decision 11).
 *
 * Every descriptor is close-on-exec; a script gets only its stdin (/dev/null), stdout and stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_S 0.5
#define CHUNK 3900
#define MAX_RUNS 256
#define MAX_DROPPED 256
#define MAX_REQUEST (16 << 20)
static const char HELD[] = "osb-backup-agent: held script next";
static const char TITLE[] = "osb-backup-agent: script helper";

enum { OUT, ERR, X, NPIPES };
static const char *const PIPE_NAMES[NPIPES] = {"out", "err", "x"};

struct run {
  int used;
  char id[32];
  pid_t pid;
  int fd[NPIPES]; /* -1 once ended */
  int failed, has_status, status;
  double until;
  /* Bytes in its out and err pipes when it exited: relayed whatever the drain time says. */
  int owed[NPIPES];
};
struct spare {
  pid_t pid;
  int fd[NPIPES], go;
};

static struct run runs[MAX_RUNS];
static struct spare spare = {0, {-1, -1, -1}, -1};
static pid_t dropped[MAX_DROPPED];
/* A `want` came while the spare was promised to a start whose `run` had not come yet. */
static int wanted;
/* A script ended: a spare for the next stage, forked once its end is reported (see spawner.ts). */
static int spare_due;
static int wake[2];
static char held_name[32];
static char *title_area;
static size_t title_len;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* An answer to the agent; the agent gone means there is no one left to run scripts for. */
static void say(const char *p, size_t n) {
  if (write_all(1, p, n) < 0) _exit(0);
}

static void sayf(const char *format, ...) {
  char line[512];
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(line, sizeof line, format, ap);
  va_end(ap);
  if (n < 0) return;
  say(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* The command line /proc shows (held.ts reads it): written over the helper's own argv. */
static void set_title(const char *t) {
  size_t n = strlen(t);
  if (n >= title_len) n = title_len - 1;
  memset(title_area, 0, title_len);
  memcpy(title_area, t, n);
}

static int comm_of(pid_t pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, out, size - 1);
  close(fd);
  if (n < 0) return -1;
  out[n] = 0;
  return 0;
}

static void on_chld(int sig) {
  (void)sig;
  int saved = errno;
  ssize_t ignored = write(wake[1], "c", 1);
  (void)ignored;
  errno = saved;
}

static void closefd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* A count, then that many NUL-terminated strings, from *at on: as a NULL-terminated array, *at
 * moved past them. A malformed request ends the held child: it runs nothing. */
static char **string_list(char **at, char *end, long min) {
  char *p = *at;
  if (p > end) _exit(127);
  long count = strtol(p, NULL, 10);
  p += strlen(p) + 1;
  if (count < min || count > 100000) _exit(127);
  char **list = calloc((size_t)count + 1, sizeof *list);
  if (!list) _exit(127);
  for (long i = 0; i < count; i++) {
    if (p > end) _exit(127);
    list[i] = p;
    p += strlen(p) + 1;
  }
  *at = p;
  return list;
}

/* The held child: its own session, off the helper's pipes, then it waits for what to run. The
 * end of its go pipe (the helper ended) means: run nothing. */
static void held_child(int out, int err, int go, int x) {
  setsid();
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  if (null > 2) close(null);
  close(out);
  close(err);
  size_t cap = 65536, len = 0;
  char *req = malloc(cap);
  if (!req) _exit(127);
  long want = -1;
  size_t head = 0;
  for (;;) {
    if (want < 0) {
      char *colon = memchr(req, ':', len);
      if (colon) {
        head = (size_t)(colon - req) + 1;
        want = strtol(req, NULL, 10);
        if (want < 0 || want > MAX_REQUEST) _exit(127);
      }
    }
    if (want >= 0 && len >= head + (size_t)want) break;
    if (len == cap) {
      cap *= 2;
      char *bigger = realloc(req, cap);
      if (!bigger) _exit(127);
      req = bigger;
    }
    ssize_t n = read(go, req + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);
    len += (size_t)n;
  }
  /* cwd, argc, argv…, envc, NAME=value…: NUL-separated, the last one unterminated. */
  if (head + (size_t)want + 1 > cap) {
    char *bigger = realloc(req, head + (size_t)want + 1);
    if (!bigger) _exit(127);
    req = bigger;
  }
  char *p = req + head, *end = p + want;
  *end = 0;
  char *cwd = p;
  p += strlen(p) + 1;
  char **argv = string_list(&p, end, 1);
  char **env = string_list(&p, end, 0);
  char message[PATH_MAX + 128];
  if (chdir(cwd) != 0) {
    int n = snprintf(message, sizeof message, "chdir %s: %s", cwd, strerror(errno));
    write_all(x, message, (size_t)n < sizeof message ? (size_t)n : sizeof message - 1);
    _exit(127);
  }
  signal(SIGPIPE, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  extern char **environ;
  environ = env;
  execvp(argv[0], argv);
  int n = snprintf(message, sizeof message, "exec %s: %s", argv[0], strerror(errno));
  write_all(x, message, (size_t)n < sizeof message ? (size_t)n : sizeof message - 1);
  _exit(127);
}

static void fork_spare(void) {
  if (spare.pid) return;
  int o[2], e[2], g[2], x[2];
  if (pipe2(o, O_CLOEXEC) < 0) goto no_pipe;
  if (pipe2(e, O_CLOEXEC) < 0) goto no_pipe_o;
  if (pipe2(g, O_CLOEXEC) < 0) goto no_pipe_e;
  if (pipe2(x, O_CLOEXEC) < 0) goto no_pipe_g;
  set_title(HELD); /* the child has it from its first instant on */
  pid_t pid = fork();
  if (pid == 0) {
    close(o[0]), close(e[0]), close(g[1]), close(x[0]), close(wake[0]), close(wake[1]);
    for (int i = 0; i < MAX_RUNS; i++)
      for (int k = 0; k < NPIPES; k++)
        if (runs[i].used && runs[i].fd[k] >= 0) close(runs[i].fd[k]);
    held_child(o[1], e[1], g[0], x[1]);
  }
  int saved = errno;
  set_title(TITLE);
  close(o[1]), close(e[1]), close(g[0]), close(x[1]);
  if (pid < 0) {
    close(o[0]), close(e[0]), close(g[1]), close(x[0]);
    sayf("nospare fork: %s\n", strerror(saved));
    return;
  }
  spare = (struct spare){pid, {o[0], e[0], x[0]}, g[1]};
  sayf("spare %d\n", (int)pid);
  return;
no_pipe_g:
  close(g[0]), close(g[1]);
no_pipe_e:
  close(e[0]), close(e[1]);
no_pipe_o:
  close(o[0]), close(o[1]);
no_pipe:
  sayf("nospare pipe: %s\n", strerror(errno));
}

static void close_spare(void) {
  for (int k = 0; k < NPIPES; k++) closefd(&spare.fd[k]);
  closefd(&spare.go);
  spare.pid = 0;
}

static void request(char *body, size_t len) {
  /* what, pid, id: the first three fields */
  char *f[3] = {body, NULL, NULL};
  char *p = body, *end = body + len;
  for (int i = 1; i < 3; i++) {
    char *nul = memchr(p, 0, (size_t)(end - p));
    if (!nul) break;
    p = nul + 1;
    f[i] = p;
  }
  pid_t pid = f[1] ? (pid_t)strtol(f[1], NULL, 10) : 0;
  if (strcmp(f[0], "want") == 0) {
    if (spare.pid && spare.pid == pid) wanted = 1; /* claimed: the agent has heard of it */
    fork_spare();
    return;
  }
  if (!f[1]) return;
  if (strcmp(f[0], "drop") == 0) {
    if (!spare.pid || spare.pid != pid) return;
    for (int i = 0; i < MAX_DROPPED; i++)
      if (!dropped[i]) {
        dropped[i] = pid;
        break;
      }
    close_spare();
    return;
  }
  if (strcmp(f[0], "run") != 0 || !f[2]) return;
  char *id = f[2];
  char *nul = memchr(id, 0, (size_t)(end - id));
  if (!nul || (size_t)(nul - id) >= sizeof runs[0].id) return;
  struct run *r = NULL;
  for (int i = 0; i < MAX_RUNS && !r; i++)
    if (!runs[i].used) r = &runs[i];
  if (!spare.pid || spare.pid != pid) {
    sayf("failed %s the held child %d is gone\nexit %s 127 0\n", id, (int)pid, id);
    return;
  }
  if (!r) { /* more scripts at once than any agent runs: this spare runs nothing */
    for (int i = 0; i < MAX_DROPPED; i++)
      if (!dropped[i]) {
        dropped[i] = pid;
        break;
      }
    close_spare();
    sayf("failed %s too many scripts at once\nexit %s 127 0\n", id, id);
    return;
  }
  *r = (struct run){1, "", pid, {spare.fd[OUT], spare.fd[ERR], spare.fd[X]}, 0, 0, 0, 0, {0, 0, 0}};
  memcpy(r->id, id, (size_t)(nul - id) + 1);
  /* the rest: cwd, argc, argv…, envc, env… */
  char *what = nul + 1;
  size_t what_len = (size_t)(end - what);
  char head[32];
  int n = snprintf(head, sizeof head, "%zu:", what_len);
  /* A child killed while held: the write fails (EPIPE, SIGPIPE ignored) and its exit is reported. */
  if (write_all(spare.go, head, (size_t)n) == 0) write_all(spare.go, what, what_len);
  close(spare.go);
  spare.go = -1;
  spare.pid = 0;
  for (int k = 0; k < NPIPES; k++) spare.fd[k] = -1;
  /* Starts at once (jobs side by side): the next one waits for this fork. */
  if (wanted) {
    wanted = 0;
    fork_spare();
  }
}

/* The child's error pipe ended: it exec'd (close-on-exec), failed to (said so first) or was
 * killed while held. exec gave it the name of what it runs; a held child still has the helper's.
 * Read before the child is reaped (reap waits for this), so /proc still has it. */
static void ran(struct run *r) {
  if (r->failed) return;
  char name[32];
  if (comm_of(r->pid, name, sizeof name) == 0 && strcmp(name, held_name) != 0) sayf("running %s\n", r->id);
}

static void reap(void) {
  int status;
  if (spare.pid && waitpid(spare.pid, &status, WNOHANG) > 0) {
    pid_t pid = spare.pid;
    close_spare();
    sayf("lost %d %d %d\n", (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : 0, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  for (int i = 0; i < MAX_DROPPED; i++)
    if (dropped[i] && waitpid(dropped[i], &status, WNOHANG) != 0) dropped[i] = 0;
  for (int i = 0; i < MAX_RUNS; i++) {
    struct run *r = &runs[i];
    if (!r->used || r->has_status || r->fd[X] >= 0) continue;
    if (waitpid(r->pid, &status, WNOHANG) <= 0) continue;
    r->has_status = 1;
    r->status = status;
    r->until = now() + DRAIN_S;
    /* What it wrote before its end is in the pipes now. Relaying it may take longer than the
     * drain (each chunk waits while the agent is busy): the drain bounds only what a process it
     * left behind writes later. */
    for (int k = OUT; k <= ERR; k++)
      if (r->fd[k] < 0 || ioctl(r->fd[k], FIONREAD, &r->owed[k]) < 0) r->owed[k] = 0;
    spare_due = 1;
  }
}

static void finish(void) {
  for (int i = 0; i < MAX_RUNS; i++) {
    struct run *r = &runs[i];
    if (!r->used || !r->has_status) continue;
    int open_pipes = r->fd[OUT] >= 0 || r->fd[ERR] >= 0 || r->fd[X] >= 0;
    int owing = (r->fd[OUT] >= 0 && r->owed[OUT] > 0) || (r->fd[ERR] >= 0 && r->owed[ERR] > 0);
    if (open_pipes && (owing || now() < r->until)) continue;
    for (int k = 0; k < NPIPES; k++) closefd(&r->fd[k]);
    r->used = 0;
    int s = r->status;
    sayf("exit %s %d %d\n", r->id, WIFEXITED(s) ? WEXITSTATUS(s) : 0, WIFSIGNALED(s) ? WTERMSIG(s) : 0);
  }
}

static void readable(struct run *r, int k) {
  char buf[CHUNK];
  ssize_t n = read(r->fd[k], buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    closefd(&r->fd[k]);
    if (k == X) ran(r);
    return;
  }
  if (k == X) {
    r->failed = 1;
    sayf("failed %s ", r->id);
    say(buf, (size_t)n);
    say("\n", 1);
  } else {
    r->owed[k] = r->owed[k] > n ? r->owed[k] - (int)n : 0;
    sayf("%s %s %zd\n", PIPE_NAMES[k], r->id, n);
    say(buf, (size_t)n);
  }
}

int main(int argc, char **argv) {
  (void)argc;
  /* The title is written over argv[0]: the agent starts the helper with a long enough one. */
  title_area = argv[0];
  title_len = strlen(argv[0]) + 1;
  if (title_len < sizeof HELD) {
    fprintf(stderr, "script-helper: argv[0] must be at least %zu bytes long\n", sizeof HELD - 1);
    return 2;
  }
  set_title(TITLE);
  prctl(PR_SET_NAME, TITLE); /* comm: its first 15 bytes, as Perl's $0 gives it */
  if (comm_of(getpid(), held_name, sizeof held_name) < 0) held_name[0] = 0;
  signal(SIGPIPE, SIG_IGN);
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) return 2;
  struct sigaction sa = {0};
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);

  size_t cap = 65536, len = 0;
  char *in = malloc(cap);
  if (!in) return 2;
  for (;;) {
    struct pollfd fds[2 + MAX_RUNS * NPIPES];
    struct run *owner[2 + MAX_RUNS * NPIPES];
    int kind[2 + MAX_RUNS * NPIPES];
    int nfds = 0;
    fds[nfds++] = (struct pollfd){0, POLLIN, 0};
    fds[nfds++] = (struct pollfd){wake[0], POLLIN, 0};
    double due = -1;
    int exiting = 0, children = spare.pid != 0;
    for (int i = 0; i < MAX_DROPPED; i++) children |= dropped[i] != 0;
    for (int i = 0; i < MAX_RUNS; i++) {
      struct run *r = &runs[i];
      if (!r->used) continue;
      int open_pipes = 0;
      for (int k = 0; k < NPIPES; k++)
        if (r->fd[k] >= 0) {
          owner[nfds] = r, kind[nfds] = k;
          fds[nfds++] = (struct pollfd){r->fd[k], POLLIN, 0};
          open_pipes = 1;
        }
      if (r->has_status) {
        if (due < 0 || r->until < due) due = r->until;
      } else {
        children = 1;
        if (!open_pipes) exiting = 1;
      }
    }
    /* A child's end wakes the loop through the wake pipe; the limits are a safety net only. */
    int timeout = -1;
    if (due >= 0) {
      double wait = due - now();
      timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
    }
    int limit = exiting ? 10 : children ? 1000 : -1;
    if (limit >= 0 && (timeout < 0 || timeout > limit)) timeout = limit;
    int got = poll(fds, (nfds_t)nfds, timeout);
    if (got < 0 && errno != EINTR) return 2;
    if (got > 0) {
      if (fds[1].revents) {
        char drain[512];
        while (read(wake[0], drain, sizeof drain) > 0) {}
      }
      for (int i = 2; i < nfds; i++)
        if (fds[i].revents && owner[i]->used && owner[i]->fd[kind[i]] == fds[i].fd) readable(owner[i], kind[i]);
      if (fds[0].revents) {
        if (len == cap) {
          if (cap >= MAX_REQUEST + 64) return 2; /* no request is that long: not our agent */
          cap *= 2;
          char *bigger = realloc(in, cap);
          if (!bigger) return 2;
          in = bigger;
        }
        ssize_t n = read(0, in + len, cap - len);
        if (n == 0 || (n < 0 && errno != EINTR)) return 0; /* the agent is gone */
        if (n > 0) len += (size_t)n;
        size_t at = 0;
        for (;;) {
          char *colon = memchr(in + at, ':', len - at);
          if (!colon) break;
          char *stop;
          long want = strtol(in + at, &stop, 10);
          if (stop != colon || want < 0 || want > MAX_REQUEST) return 2;
          size_t head = (size_t)(colon - (in + at)) + 1;
          if (len - at < head + (size_t)want) break;
          char *body = malloc((size_t)want + 1);
          if (!body) return 2;
          memcpy(body, in + at + head, (size_t)want);
          body[want] = 0;
          request(body, (size_t)want);
          free(body);
          at += head + (size_t)want;
        }
        memmove(in, in + at, len - at);
        len -= at;
      }
    }
    reap();
    finish();
    if (spare_due) {
      spare_due = 0;
      fork_spare();
    }
  }
}
