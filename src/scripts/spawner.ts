// Starts lifecycle scripts from a small helper process instead of from the agent itself.
// The helper is compiled C where the installation has it (libexec/script-helper, built from
// script-helper.c by tools/build-native.sh, shipped in the release), else the Perl program below:
// one design and one protocol, described here.
//
// Node starts a child with fork(): the kernel copies the agent's page tables (80-100 MB resident),
// the event loop waits until the child has exec'd, and afterwards every page the agent writes
// takes a copy-on-write fault (~1,500 per no-op backup on the bench VM). The Go agent pays none
// of it. Node has no vfork or posix_spawn, so a small process does the forking: Perl, which every
// Debian and Ubuntu system has (perl-base is Essential), with no module at all (POSIX and
// Time::HiRes would add ~2.7 MB to a process that lives while a dump runs): the few system calls
// it needs beyond the core language are made by number (SYSCALLS).
//
// One helper process, one select loop, no process per script besides the script itself. The
// helper keeps one child forked ahead, the spare: in a session and process group of its own,
// titled HELD_TITLE (held.ts), holding before exec. The agent learns the spare's pid ahead, so a
// script start is: the agent claims the spare and stores its pid marked held in the same write
// that records the stage (docs/DURABILITY.md: the record names a script's group before the script
// can act), then sends `run` with what to run; the spare execs at once. A spare that is told
// nothing (the agent and so the helper died) exits without running anything; its record still
// says held, so recovery owes its stage. Once the script runs (the exec closed the child's
// close-on-exec error pipe and gave it a new /proc comm), the helper says `running` and the agent
// drops the mark: a recorded pid that is gone then counts as a script that ran. A new spare is
// forked when a script ends, right after its end is reported, while the agent records that end
// and the next stage's start (~1 ms), and when the agent asks for one: at once if none waits,
// else, when the one waiting is promised to a start whose `run` has not come yet, right after
// that `run` (jobs starting side by side each get one). Not while a script starts: the fork and
// the new child's first steps took the CPU from the exec and bash's start-up (per-job cost 1.59
// against 1.47 times the Go agent's, docs/PERFORMANCE.md), and a spare forked then sat beside a
// long dump. The agent drops a spare it has not claimed within SPARE_MS.
// Output is relayed to the agent as framed chunks. What is in the pipes when the script exited is
// relayed whole, however long the agent takes to read it; output that arrives later is relayed
// for DRAIN seconds, then the pipes are closed, so a process the script left behind cannot hold
// the stage.
//
// Requests on the helper's stdin, each `<length>:` and that many bytes of NUL-separated fields:
// `want`, pid (fork a spare unless one waits; `pid`: the last spare the agent was told of, so
// that one waiting that the agent has claimed is told from one it has not heard of yet); `drop`,
// pid (end that spare: it runs nothing); `run`, pid, id, cwd, argc, argv…, envc, NAME=value… (the
// spare `pid` becomes script `id` and execs it).
// Answers, one per line (a chunk's bytes follow its line): `spare <pid>`, `lost <pid> <code>
// <signal number>` (a spare ended before its `run`), `nospare <reason>` (the fork failed), and per
// script: `failed <id> <reason>` (it cannot run: exec failed, or the spare was gone; an exit
// follows), `running <id>` (exec'd), `out|err <id> <bytes>`, `exit <id> <code> <signal number>`.
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { accessSync, constants as fsConstants } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import { INSTALL_ROOT } from '../install-root.ts'
import { HELD_TITLE, HELPER_TITLE } from './held.ts'
import { processStartTime } from './process-group.ts'

const PERL = '/usr/bin/perl'
/** The compiled helper, beside the agent's code in the installation. */
export const COMPILED_HELPER = fileURLToPath(new URL('libexec/script-helper', INSTALL_ROOT))
/** The helper ends after this long without a script (it holds ~1.6 MB compiled, ~5.6 MB in Perl). */
const IDLE_MS = 2_000
/** A spare not claimed within this long is dropped (a held child holds ~0.8 MB, ~1.8 MB of Perl). */
const SPARE_MS = 1_000

/**
 * Linux system call numbers the helper needs, per CPU architecture (asm/unistd.h): setsid, and
 * clock_gettime for the drain's deadline. Elsewhere Node starts scripts itself.
 */
const SYSCALLS: Partial<Record<NodeJS.Architecture, { setsid: number; clockGettime: number }>> = {
  x64: { setsid: 112, clockGettime: 228 },
  arm64: { setsid: 157, clockGettime: 113 },
}

/**
 * The helper's Perl. Numbers it would take from modules are given by the agent: EINTR and
 * O_NONBLOCK from Node; F_SETFL (4), WNOHANG (1) and CLOCK_MONOTONIC (1) are the same on every
 * Linux architecture, FIONREAD (0x541B) on both in SYSCALLS. No `use strict; use warnings`
 * (~0.5 MB): a test compiles it with both.
 */
export function helperProgram(calls: { setsid: number; clockGettime: number }): string {
  return String.raw`
my $DRAIN = 0.5; my $CHUNK = 3900; my $HELD = '${HELD_TITLE}'; my $TITLE = '${HELPER_TITLE}';
my $EINTR = ${constants.errno.EINTR}; my $O_NONBLOCK = ${fsConstants.O_NONBLOCK}; my $F_SETFL = 4; my $WNOHANG = 1; my $FIONREAD = 0x541B;
my $SYS_setsid = ${calls.setsid}; my $SYS_clock_gettime = ${calls.clockGettime};
$0 = $TITLE; my $held_name = comm('self') // '';
$SIG{PIPE} = 'DEFAULT';
binmode STDIN; binmode STDOUT; $| = 1;
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
fcntl($_, $F_SETFL, $O_NONBLOCK) or die "fcntl: $!" for $wake_r, $wake_w;
$SIG{CHLD} = sub { syswrite $wake_w, 'c' };
my (%run, %by_pid, %by_fd, %dropped, $spare, $wanted, $spare_due); my $in = '';
sub now { my $ts = "\0" x 16; syscall($SYS_clock_gettime, 1, $ts) == 0 or die "clock_gettime: $!"; my ($s, $ns) = unpack 'q2', $ts; return $s + $ns / 1e9 }
# A SIGCHLD (a script ending) interrupts a read or a write blocked on a full pipe: EINTR is retried.
sub interrupted { return $! == $EINTR }
sub write_all { my ($fh, $m) = @_; my $off = 0; while ($off < length $m) { my $n = syswrite $fh, $m, length($m) - $off, $off; if (!defined $n) { next if interrupted(); return } $off += $n } return 1 }
sub say_ { write_all(\*STDOUT, $_[0]) or die "write: $!" }
sub watch { my ($id, $name, $fh) = @_; $run{$id}{$name} = $fh; $by_fd{fileno $fh} = [$id, $name] }
sub unwatch { my ($id, $name) = @_; my $fh = delete $run{$id}{$name} or return; delete $by_fd{fileno $fh}; close $fh }
# The child: its own session, off the helper's pipes, then it waits for what to run. The end of
# its go pipe (the helper ended) means: run nothing.
sub held_child {
  my ($out, $err, $go, $x) = @_;
  syscall($SYS_setsid);
  open(STDIN, '<', '/dev/null'); open(STDOUT, '>&', $out); open(STDERR, '>&', $err); close $out; close $err;
  my $req = '';
  until ($req =~ /^(\d+):/ && length($req) >= length($1) + 1 + $1) {
    my $n = sysread $go, $req, 65536, length $req;
    next if !defined $n && interrupted();
    exit 0 unless $n;
  }
  my ($len) = $req =~ /^(\d+):/; my @f = split /\0/, substr($req, length($len) + 1, $len), -1;
  my $cwd = shift @f; my @argv = splice @f, 0, shift @f; my @env = splice @f, 0, shift @f;
  if (!chdir $cwd) { syswrite $x, "chdir $cwd: $!"; exit 127 }
  %ENV = map { split /=/, $_, 2 } @env;
  exec { $argv[0] } @argv or syswrite $x, "exec $argv[0]: $!";
  exit 127;
}
sub fork_spare {
  return if $spare;
  my ($or, $ow, $er, $ew, $gr, $gw, $xr, $xw);
  unless (pipe($or, $ow) && pipe($er, $ew) && pipe($gr, $gw) && pipe($xr, $xw)) { say_ "nospare pipe: $!\n"; return }
  $0 = "$HELD next"; # the child has it from its first instant on
  my $pid = fork;
  $0 = $TITLE if $pid // 1;
  if (!defined $pid) { say_ "nospare fork: $!\n"; return }
  if ($pid == 0) {
    close $_ for $or, $er, $gw, $xr, $wake_r, $wake_w;
    for my $r (values %run) { close $_ for grep { ref } values %$r }
    $SIG{CHLD} = 'DEFAULT';
    held_child($ow, $ew, $gr, $xw);
  }
  close $_ for $ow, $ew, $gr, $xw;
  $spare = { pid => $pid, out => $or, err => $er, x => $xr, go => $gw };
  say_ "spare $pid\n";
}
sub request {
  my $body = shift; my ($what, $pid, $id) = split /\0/, $body, 4;
  if ($what eq 'want') { $wanted = 1 if $spare && $spare->{pid} == $pid; fork_spare(); return }
  if ($what eq 'drop') {
    return unless $spare && $spare->{pid} == $pid;
    close $_ for @$spare{qw(out err x go)}; $dropped{$pid} = 1; undef $spare; return;
  }
  return unless $what eq 'run';
  if (!$spare || $spare->{pid} != $pid) { say_ "failed $id the held child $pid is gone\nexit $id 127 0\n"; return }
  my $s = $spare; undef $spare;
  $run{$id} = { id => $id, pid => $pid }; $by_pid{$pid} = $id;
  watch($id, 'out', $s->{out}); watch($id, 'err', $s->{err}); watch($id, 'x', $s->{x});
  my $what_to_run = substr($body, length("run\0$pid\0$id\0"));
  # A child killed while held: the write fails (no SIGPIPE for the helper) and its exit is reported.
  { local $SIG{PIPE} = 'IGNORE'; write_all($s->{go}, length($what_to_run) . ":$what_to_run"); }
  close $s->{go};
  if ($wanted) { $wanted = 0; fork_spare() } # starts at once (jobs side by side): the next one waits for this fork
}
sub comm { open(my $f, '<', "/proc/$_[0]/comm") or return; my $c = <$f>; return $c }
# The child's error pipe ended: it exec'd (close-on-exec), failed to (said so first) or was killed
# while held. exec gave it the name of what it runs; a held child still has the helper's. Read
# before the child is reaped (reap waits for this), so /proc still has it even if it has exited.
sub ran {
  my $r = $run{shift()}; return if $r->{failed};
  my $name = comm($r->{pid});
  say_ "running $r->{id}\n" if defined $name && $name ne $held_name;
}
sub reap {
  if ($spare && waitpid($spare->{pid}, $WNOHANG) > 0) {
    close $_ for @$spare{qw(out err x go)}; say_ sprintf("lost %d %d %d\n", $spare->{pid}, $? >> 8, $? & 127); undef $spare;
  }
  for my $pid (keys %dropped) { delete $dropped{$pid} if waitpid($pid, $WNOHANG) != 0 }
  for my $pid (keys %by_pid) {
    my $id = $by_pid{$pid}; next if $run{$id}{x};
    next unless waitpid($pid, $WNOHANG) > 0;
    delete $by_pid{$pid}; $run{$id}{status} = $?; $run{$id}{until} = now() + $DRAIN;
    # What it wrote before its end is in the pipes now: relayed even when that takes longer than
    # the drain (each chunk waits while the agent is busy). The drain bounds only what a process
    # it left behind writes later. Kept as plain numbers: a spare's fork closes every reference
    # a run holds (its pipes).
    for my $name (qw(out err)) {
      my $fh = $run{$id}{$name}; my $n = pack 'i', 0;
      $run{$id}{"owed_$name"} = $fh && ioctl($fh, $FIONREAD, $n) ? unpack('i', $n) : 0;
    }
    $spare_due = 1;
  }
}
sub finish {
  for my $id (keys %run) {
    my $r = $run{$id}; next unless defined $r->{status};
    my $owing = grep { $r->{$_} && $r->{"owed_$_"} } qw(out err);
    next if ($r->{out} || $r->{err} || $r->{x}) && ($owing || now() < $r->{until});
    unwatch($id, $_) for qw(out err x);
    delete $run{$id};
    say_ sprintf("exit %s %d %d\n", $id, $r->{status} >> 8, $r->{status} & 127);
  }
}
sub readable {
  my ($id, $name) = @{$by_fd{shift()}}; my $buf;
  my $n = sysread $run{$id}{$name}, $buf, $CHUNK;
  return if !defined $n && interrupted();
  if (!$n) { unwatch($id, $name); ran($id) if $name eq 'x'; return }
  if ($name eq 'x') { $run{$id}{failed} = 1; say_ "failed $id $buf\n"; return }
  my $r = $run{$id}; my $owed = "owed_$name"; $r->{$owed} = $r->{$owed} > $n ? $r->{$owed} - $n : 0 if $r->{$owed};
  say_ "$name $id $n\n$buf";
}
while (1) {
  my $rin = ''; vec($rin, fileno(STDIN), 1) = 1; vec($rin, fileno($wake_r), 1) = 1;
  vec($rin, $_, 1) = 1 for keys %by_fd;
  my @due = map { $_->{until} } grep { defined $_->{status} } values %run;
  my $wait; if (@due) { my ($first) = sort { $a <=> $b } @due; $wait = $first - now(); $wait = 0 if $wait < 0 }
  # Perl runs the SIGCHLD handler between statements: a child that ends just before select blocks
  # would wake nothing. With children about, select returns within a second anyway, and within
  # 10 ms while a script whose pipes all ended (it is exiting) waits to be reaped.
  my $limit = %by_pid || %dropped || $spare ? 1 : undef;
  $limit = 0.01 if grep { !$_->{out} && !$_->{err} && !$_->{x} } map { $run{$_} } values %by_pid;
  $wait = $limit if defined $limit && (!defined $wait || $wait > $limit);
  my $got = select(my $rout = $rin, undef, undef, $wait);
  if ($got > 0) {
    if (vec($rout, fileno($wake_r), 1)) { my $x; sysread $wake_r, $x, 512 }
    for my $fd (keys %by_fd) { readable($fd) if vec($rout, $fd, 1) && $by_fd{$fd} }
    if (vec($rout, fileno(STDIN), 1)) {
      my $n = sysread STDIN, $in, 65536, length $in;
      exit 0 if defined $n ? $n == 0 : !interrupted(); # the agent is gone
      while ($in =~ /^(\d+):/ && length($in) >= length($1) + 1 + $1) {
        my $len = $1; request(substr($in, length($len) + 1, $len)); substr($in, 0, length($len) + 1 + $len) = '';
      }
    }
  }
  reap(); finish();
  if ($spare_due) { $spare_due = 0; fork_spare() } # for the next stage, once the end is reported
}
`
}

/** How a script started through the helper ended. */
export interface HelperExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** It could not be started (fork, working directory, exec), or its end was not learnt. */
  error?: Error
  /** The helper ended before it reported the script's end. */
  unreported?: boolean
}

/** A script forked by the helper, held before exec until go(). */
export interface HeldScript {
  pid: number
  /** Its /proc start time, read while it waited as the spare (off the path of a start). */
  startTime: string | undefined
  held: true
  /** Lets the script run (exec); call once its pid is recorded. */
  go: () => void
  /** Resolves with the exit once its output is relayed (or the drain time is over). */
  exited: Promise<HelperExit>
}

export interface SpawnRequest {
  argv: readonly string[]
  cwd: string
  env: Record<string, string>
  onStdout: (chunk: Buffer) => void
  onStderr: (chunk: Buffer) => void
  /** The script runs (it was exec'd after go): its pid is no longer a held child's. */
  onRunning?: () => void
}

interface Pending {
  request: SpawnRequest
  /** The spare it claimed. */
  pid: number
  /** `run` was sent: from now on the helper reports on it by id. */
  sent: boolean
  exited: (exit: HelperExit) => void
  /** Set by `failed`: the script could not run; its exit follows. */
  startError?: Error
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]))

const exitOf = (code: number, signal: number): HelperExit =>
  signal ? { code: null, signal: SIGNAL_NAMES.get(signal) ?? 'SIGKILL' } : { code, signal: null }

/** The helper ended before a start had a spare: nothing was run or recorded, so a new one may try. */
class HelperGone extends Error {
  constructor() {
    super('the script starter ended')
  }
}

/** One request: its byte length, then the NUL-separated fields. */
function frame(fields: readonly string[]): Buffer {
  const body = Buffer.from(fields.join('\0'))
  return Buffer.concat([Buffer.from(`${body.length}:`), body])
}

/** One helper process and the scripts it runs for us. */
class Helper {
  readonly #child: ChildProcess
  readonly #pending = new Map<string, Pending>()
  /** The spare's pid, once the helper said it is forked and while no start has claimed it. */
  #spare: { pid: number; startTime: string | undefined } | undefined
  #spareTimer: NodeJS.Timeout | undefined
  /** The pid of the last spare the helper told of (0: none yet), sent with `want`. */
  #lastSpare = 0
  /** Starts waiting for a spare, first come first served. */
  readonly #waiting: { claim: (spare: { pid: number; startTime: string | undefined }) => void; fail: (error: Error) => void }[] = []
  #buffered: Buffer = Buffer.alloc(0)
  #idle: NodeJS.Timeout | undefined
  #gone = false
  /** Why the helper can run nothing more (it ended, or could not start). */
  #ended: Error | undefined
  readonly #onGone: () => void

  constructor(command: HelperCommand, onGone: () => void) {
    this.#onGone = onGone
    // An empty environment: nothing of the agent's (PERL5OPT and friends included) reaches it.
    // A session of its own: a signal to the agent's process group (^C in a terminal) does not end
    // it while the agent, shutting down, still runs cleanup and unlock scripts through it.
    this.#child = spawn(command.file, command.args, { argv0: command.argv0, env: {}, stdio: ['pipe', 'pipe', 'inherit'], detached: true })
    this.#child.stdout?.on('data', (data: Buffer) => this.#read(data))
    this.#child.stdout?.on('end', () => this.#failAll(new Error('the script starter ended')))
    this.#child.on('exit', () => this.#retire())
    this.#child.on('error', (error) => {
      this.#retire()
      this.#failAll(error)
    })
    this.#child.stdin?.on('error', () => this.#retire())
  }

  get usable(): boolean {
    return !this.#gone && this.#ended === undefined
  }

  /** The spare, claimed for script `id`: its pid is the script's from now on. */
  async start(request: SpawnRequest, id: string): Promise<HeldScript> {
    clearTimeout(this.#idle)
    this.#hold(true)
    const { pid, startTime } = this.#spare ?? (await this.#nextSpare())
    // It may have ended while this start waited: nothing would ever report on the script.
    if (this.#ended ?? this.#gone) throw this.#ended ?? new HelperGone()
    this.#spare = undefined
    clearTimeout(this.#spareTimer)
    clearTimeout(this.#idle) // a script that ended meanwhile may have set it
    let resolveExit: Pending['exited'] = () => {}
    const exited = new Promise<HelperExit>((r) => (resolveExit = r))
    const pending: Pending = { request, pid, sent: false, exited: resolveExit }
    this.#pending.set(id, pending)
    const env = Object.entries(request.env).map(([k, v]) => `${k}=${v}`)
    const go = () => {
      if (this.#pending.get(id) !== pending || pending.sent) return // lost while held: its end is reported
      pending.sent = true
      this.#send(['run', String(pid), id, request.cwd, String(request.argv.length), ...request.argv, String(env.length), ...env])
    }
    return { pid, startTime, held: true, go, exited }
  }

  #nextSpare(): Promise<{ pid: number; startTime: string | undefined }> {
    if (this.#ended ?? this.#gone) return Promise.reject(this.#ended ?? new HelperGone())
    return new Promise((claim, fail) => {
      this.#waiting.push({ claim, fail })
      this.#send(['want', String(this.#lastSpare)])
    })
  }

  #send(fields: readonly string[]): void {
    this.#child.stdin?.write(frame(fields))
  }

  #read(data: Buffer): void {
    this.#buffered = this.#buffered.length === 0 ? data : Buffer.concat([this.#buffered, data])
    for (;;) {
      const newline = this.#buffered.indexOf(10)
      if (newline < 0) return
      const [kind, id = '', rest = ''] = this.#buffered.subarray(0, newline).toString('latin1').split(' ', 3)
      const pending = this.#pending.get(id)
      if (kind === 'out' || kind === 'err') {
        const length = Number(rest)
        if (this.#buffered.length < newline + 1 + length) return // the chunk is not all here yet
        const chunk = Buffer.from(this.#buffered.subarray(newline + 1, newline + 1 + length))
        this.#buffered = this.#buffered.subarray(newline + 1 + length)
        if (kind === 'out') pending?.request.onStdout(chunk)
        else pending?.request.onStderr(chunk)
        continue
      }
      const line = this.#buffered.subarray(0, newline).toString('utf8')
      this.#buffered = this.#buffered.subarray(newline + 1)
      if (kind === 'spare' || kind === 'lost' || kind === 'nospare') this.#spareNews(kind, line)
      else if (pending) this.#answer(kind, id, line, pending)
    }
  }

  /** `spare <pid>`, `lost <pid>`, `nospare <reason>`. */
  #spareNews(kind: string, line: string): void {
    const word = line.slice(kind.length + 1)
    if (kind === 'spare') {
      this.#lastSpare = Number(word)
      const waiter = this.#waiting.shift()
      const spare = { pid: Number(word), startTime: processStartTime(Number(word)) }
      if (waiter) waiter.claim(spare)
      else this.#keepSpare(spare)
    } else if (kind === 'lost') {
      const [pid, code, signal] = word.split(' ').map(Number)
      if (this.#spare?.pid === pid) this.#spare = undefined
      else this.#lostWhileHeld(pid as number, code as number, signal as number)
    } else this.#waiting.shift()?.fail(new Error(word))
    // A start still waiting (a spare went to the one before it, or was lost): another spare.
    if (kind === 'nospare') this.#idleSoon()
    else if (this.#waiting.length > 0 && this.#spare === undefined) this.#send(['want', String(this.#lastSpare)])
  }

  /** Kept for the next start, for SPARE_MS at most. */
  #keepSpare(spare: { pid: number; startTime: string | undefined }): void {
    this.#spare = spare
    clearTimeout(this.#spareTimer)
    this.#spareTimer = setTimeout(() => {
      if (this.#spare !== spare) return
      this.#spare = undefined
      this.#send(['drop', String(spare.pid)])
    }, SPARE_MS).unref()
  }

  /** A claimed spare ended before its `run` was sent (killed): that is its script's end. */
  #lostWhileHeld(pid: number, code: number, signal: number): void {
    for (const [id, pending] of this.#pending) {
      if (pending.pid !== pid || pending.sent) continue
      this.#pending.delete(id)
      pending.exited(exitOf(code, signal))
      this.#idleSoon()
    }
  }

  #answer(kind: string | undefined, id: string, line: string, pending: Pending): void {
    if (kind === 'running') {
      pending.request.onRunning?.()
    } else if (kind === 'failed') {
      pending.startError = new Error(line.slice(`failed ${id} `.length))
    } else if (kind === 'exit') {
      this.#pending.delete(id)
      const [code, signal] = line.split(' ').slice(2).map(Number)
      pending.exited(
        pending.startError ? { code: null, signal: null, error: pending.startError } : exitOf(code as number, signal as number),
      )
      this.#idleSoon()
    }
  }

  /** With no script left, the helper ends after IDLE_MS and no longer keeps the agent's loop alive. */
  #idleSoon(): void {
    if (this.#pending.size > 0 || this.#waiting.length > 0) return
    this.#hold(false)
    clearTimeout(this.#idle)
    this.#idle = setTimeout(() => this.#retire(), IDLE_MS).unref()
  }

  /** Whether the helper keeps the agent's event loop alive: only while scripts run. */
  #hold(on: boolean): void {
    for (const handle of [this.#child, this.#child.stdin, this.#child.stdout] as ({ ref?: () => void; unref?: () => void } | null)[]) {
      if (on) handle?.ref?.()
      else handle?.unref?.()
    }
  }

  retireIfIdle(): void {
    if (this.#pending.size === 0 && this.#waiting.length === 0) this.#retire()
  }

  /** No new scripts through this helper; its stdin closes, so it ends (and its spare with it). */
  #retire(): void {
    if (this.#gone) return
    this.#gone = true
    clearTimeout(this.#idle)
    clearTimeout(this.#spareTimer)
    this.#spare = undefined
    this.#child.stdin?.end()
    this.#onGone()
    for (const waiter of this.#waiting.splice(0)) waiter.fail(new HelperGone())
  }

  /** Scripts it ran are over (their ends unreported); starts waiting for a spare fail. */
  #failAll(error: Error): void {
    this.#ended ??= error
    this.#spare = undefined
    for (const waiter of this.#waiting.splice(0)) waiter.fail(error)
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id)
      pending.exited({ code: null, signal: null, error, unreported: true })
    }
  }
}

let helper: Helper | undefined
let sequence = 0
const calls = SYSCALLS[process.arch]

/** Which helper starts scripts: the compiled one, the Perl one, or none (Node's spawn). */
export type HelperKind = 'compiled' | 'perl' | 'none'
interface HelperCommand {
  file: string
  args: string[]
  argv0: string
}

function available(kind: HelperKind): boolean {
  try {
    if (kind === 'compiled') accessSync(COMPILED_HELPER, fsConstants.X_OK)
    else if (kind === 'perl') accessSync(PERL, fsConstants.X_OK)
    return kind === 'none' || calls !== undefined
  } catch {
    return false
  }
}

const preferred = (): HelperKind => (['compiled', 'perl', 'none'] as const).find(available) ?? 'none'
let kind: HelperKind = preferred()

/** For tests: start scripts another way (false: Node's own spawn; true: the preferred helper). */
export function useScriptHelper(choice: boolean | HelperKind): void {
  const wanted = choice === true ? preferred() : choice === false ? 'none' : choice
  if (!available(wanted)) throw new Error(`the ${wanted} script helper is not available here`)
  // A helper of the other kind ends now if idle, else once its scripts have (it reports on them).
  if (wanted !== kind) {
    helper?.retireIfIdle()
    helper = undefined
  }
  kind = wanted
}

/** The helper in use ('none': Node forks scripts itself). */
export function scriptHelperKind(): HelperKind {
  return kind
}

export function scriptHelperEnabled(): boolean {
  return kind !== 'none'
}

function helperCommand(): HelperCommand {
  // The compiled helper writes its titles over argv[0]: it must be as long as the longest.
  if (kind === 'compiled') return { file: COMPILED_HELPER, args: [], argv0: HELPER_TITLE.padEnd(48) }
  return { file: PERL, args: ['-e', helperProgram(calls as NonNullable<typeof calls>)], argv0: PERL }
}

/** `argv` in the helper's spare child, held before exec; rejects when no child can be forked (the reason as message). */
export async function spawnThroughHelper(request: SpawnRequest): Promise<HeldScript> {
  const first = usableHelper()
  try {
    return await first.start(request, String(++sequence))
  } catch (error) {
    // The helper ended (killed, say) before this start had a child: nothing ran and nothing was
    // stored, so one more try on a new helper. A helper that still runs could not fork: final.
    if (first.usable) throw error
    return usableHelper().start(request, String(++sequence))
  }
}

function usableHelper(): Helper {
  if (!helper?.usable) {
    const current: Helper = new Helper(helperCommand(), () => {
      if (helper === current) helper = undefined
    })
    helper = current
  }
  return helper
}
