// Starts lifecycle scripts from a small helper process instead of from the agent itself.
//
// Node starts a child with fork(): the kernel copies the agent's page tables (80-100 MB resident),
// the event loop waits until the child has exec'd, and afterwards every page the agent writes
// takes a copy-on-write fault (~1,500 per no-op backup on the bench VM). The Go agent pays none
// of it. Node has no vfork or posix_spawn, so a small process does the forking: Perl, which every
// Debian and Ubuntu system has (perl-base is Essential), with only its core POSIX module. Its
// fork and exec of a script cost what bash's own do.
//
// One helper process, one select loop, no process per script besides the script itself. A script
// is forked into a session and process group of its own, then holds before exec until the agent
// says `go`: the agent first stores the pid, marked held (docs/DURABILITY.md: the record names a
// script's group before the script can act). A held child carries the title HELD_TITLE (held.ts).
// A child that is told nothing (the agent and so the helper died before `go`) exits without
// running anything; its record still says held, so recovery owes its stage. Once the script runs
// (the exec closed the child's close-on-exec error pipe and gave it a new /proc comm), the helper
// says `running` and the agent drops the mark: a recorded pid that is gone then counts as a
// script that ran.
// Output is relayed to the agent as framed chunks; output that arrives after the script exited is
// relayed for DRAIN seconds, then the pipes are closed, so a process the script left behind
// cannot hold the stage.
//
// Requests on the helper's stdin, each `<length>:` and that many bytes of NUL-separated fields:
// `start`, id, label, cwd, argc, argv…, envc, NAME=value…; or `go`, id. Answers, one per line (a
// chunk's bytes follow its line): `started <id> <pid>`, `failed <id> <reason>` (before
// `started`: no process; after it: exec failed, an exit follows), `running <id>` (exec'd),
// `out|err <id> <bytes>`, `exit <id> <code> <signal number>`.
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { HELD_TITLE, HELPER_TITLE } from './held.ts'

const PERL = '/usr/bin/perl'
/** The helper ends after this long without a script (it costs ~5 MB while it lives). */
const IDLE_MS = 2_000

const PROGRAM = String.raw`
use strict; use warnings; use POSIX (); use Time::HiRes ();
my $DRAIN = 0.5; my $CHUNK = 3900; my $HELD = '${HELD_TITLE}'; my $TITLE = '${HELPER_TITLE}';
$0 = $TITLE; my $held_name = comm('self') // '';
$SIG{PIPE} = 'DEFAULT';
binmode STDIN; binmode STDOUT; $| = 1;
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
POSIX::fcntl($_, POSIX::F_SETFL(), POSIX::O_NONBLOCK()) for $wake_r, $wake_w;
$SIG{CHLD} = sub { syswrite $wake_w, 'c' };
my (%run, %by_pid, %by_fd); my $in = '';
# A SIGCHLD (a script ending) interrupts a read or a write blocked on a full pipe: EINTR is retried.
sub interrupted { return $! == POSIX::EINTR() }
sub say_ { my $m = shift; my $off = 0; while ($off < length $m) { my $n = syswrite STDOUT, $m, length($m) - $off, $off; if (!defined $n) { next if interrupted(); die "write: $!" } $off += $n } }
sub watch { my ($id, $name, $fh) = @_; $run{$id}{$name} = $fh; $by_fd{fileno $fh} = [$id, $name] }
sub unwatch { my ($id, $name) = @_; my $fh = delete $run{$id}{$name} or return; delete $by_fd{fileno $fh}; close $fh }
sub start {
  my ($id, $label, $cwd, $argv, $env) = @_;
  my ($or, $ow, $er, $ew, $gr, $gw, $xr, $xw);
  unless (pipe($or, $ow) && pipe($er, $ew) && pipe($gr, $gw) && pipe($xr, $xw)) { say_ "failed $id pipe: $!\n"; return }
  $0 = "$HELD $label"; # the child has it from its first instant on
  my $pid = fork;
  $0 = $TITLE if $pid // 1;
  if (!defined $pid) { say_ "failed $id fork: $!\n"; return }
  if ($pid == 0) {
    close $_ for $or, $er, $gw, $xr, $wake_r, $wake_w;
    for my $r (values %run) { close $_ for grep { ref } values %$r }
    $SIG{CHLD} = 'DEFAULT';
    POSIX::setsid();
    # Off the helper's pipes before the hold: a held child must not keep the agent from seeing
    # the helper's end.
    open(STDIN, '<', '/dev/null');
    POSIX::dup2(fileno($ow), 1); POSIX::dup2(fileno($ew), 2);
    my $go = ''; sysread $gr, $go, 1;
    POSIX::_exit(0) unless $go eq 'g';
    if (!chdir $cwd) { syswrite $xw, "chdir $cwd: $!"; POSIX::_exit(127) }
    %ENV = map { split /=/, $_, 2 } @$env;
    { no warnings 'exec'; exec { $argv->[0] } @$argv; }
    syswrite $xw, "exec $argv->[0]: $!"; POSIX::_exit(127);
  }
  close $_ for $ow, $ew, $gr, $xw;
  $run{$id} = { id => $id, pid => $pid, go => $gw }; $by_pid{$pid} = $id;
  watch($id, 'out', $or); watch($id, 'err', $er); watch($id, 'x', $xr);
  say_ "started $id $pid\n";
}
sub request {
  my @f = split /\0/, shift, -1; my $what = shift @f; my $id = shift @f;
  if ($what eq 'go') { my $r = $run{$id} or return; my $gw = delete $r->{go} or return; syswrite $gw, 'g'; close $gw; return }
  my $label = shift @f; my $cwd = shift @f; my @argv = splice @f, 0, shift @f; my @env = splice @f, 0, shift @f;
  start($id, $label, $cwd, \@argv, \@env);
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
  for my $pid (keys %by_pid) {
    my $id = $by_pid{$pid}; next if $run{$id}{x};
    next unless waitpid($pid, POSIX::WNOHANG()) > 0;
    delete $by_pid{$pid}; $run{$id}{status} = $?; $run{$id}{until} = Time::HiRes::time() + $DRAIN;
  }
}
sub finish {
  for my $id (keys %run) {
    my $r = $run{$id}; next unless defined $r->{status};
    next if ($r->{out} || $r->{err} || $r->{x}) && Time::HiRes::time() < $r->{until};
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
  if ($name eq 'x') { $run{$id}{failed} = 1; say_ "failed $id $buf\n" } else { say_ "$name $id $n\n$buf" }
}
while (1) {
  my $rin = ''; vec($rin, fileno(STDIN), 1) = 1; vec($rin, fileno($wake_r), 1) = 1;
  vec($rin, $_, 1) = 1 for keys %by_fd;
  my @due = map { $_->{until} } grep { defined $_->{status} } values %run;
  my $wait; if (@due) { my ($first) = sort { $a <=> $b } @due; $wait = $first - Time::HiRes::time(); $wait = 0 if $wait < 0 }
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
}
`

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
  held: true
  /** Lets the script run (exec); call once its pid is recorded. */
  go: () => void
  /** Resolves with the exit once its output is relayed (or the drain time is over). */
  exited: Promise<HelperExit>
}

export interface SpawnRequest {
  /** Put in the held child's title after HELD_TITLE (the stage name); no NUL. */
  label: string
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
  started: (pid: number) => void
  failed: (error: Error) => void
  exited: (exit: HelperExit) => void
  /** Set once forked: a later `failed` is the exec's. */
  pid: number | undefined
  startError?: Error
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]))

/** One request: its byte length, then the NUL-separated fields. */
function frame(fields: readonly string[]): Buffer {
  const body = Buffer.from(fields.join('\0'))
  return Buffer.concat([Buffer.from(`${body.length}:`), body])
}

/** One helper process and the scripts it runs for us. */
class Helper {
  readonly #child: ChildProcess
  readonly #pending = new Map<string, Pending>()
  #buffered: Buffer = Buffer.alloc(0)
  #idle: NodeJS.Timeout | undefined
  #gone = false
  readonly #onGone: () => void

  constructor(onGone: () => void) {
    this.#onGone = onGone
    // An empty environment: nothing of the agent's (PERL5OPT and friends included) reaches Perl.
    // A session of its own: a signal to the agent's process group (^C in a terminal) does not end
    // it while the agent, shutting down, still runs cleanup and unlock scripts through it.
    this.#child = spawn(PERL, ['-e', PROGRAM], { env: {}, stdio: ['pipe', 'pipe', 'inherit'], detached: true })
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
    return !this.#gone
  }

  start(request: SpawnRequest, id: string): Promise<HeldScript> {
    clearTimeout(this.#idle)
    this.#hold(true)
    return new Promise((resolve, reject) => {
      let resolveExit: Pending['exited'] = () => {}
      const exited = new Promise<HelperExit>((r) => (resolveExit = r))
      const pending: Pending = {
        request,
        pid: undefined,
        started: (pid) => resolve({ pid, held: true, go: () => this.#child.stdin?.write(frame(['go', id])), exited }),
        failed: reject,
        exited: (exit) => resolveExit(exit),
      }
      this.#pending.set(id, pending)
      const env = Object.entries(request.env).map(([k, v]) => `${k}=${v}`)
      this.#child.stdin?.write(
        frame(['start', id, request.label, request.cwd, String(request.argv.length), ...request.argv, String(env.length), ...env]),
      )
    })
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
      if (pending) this.#answer(kind, id, line, pending)
    }
  }

  #answer(kind: string | undefined, id: string, line: string, pending: Pending): void {
    const words = line.split(' ')
    if (kind === 'started') {
      pending.pid = Number(words[2])
      pending.started(pending.pid)
    } else if (kind === 'running') {
      pending.request.onRunning?.()
    } else if (kind === 'failed') {
      const error = new Error(line.slice(`failed ${id} `.length))
      if (pending.pid !== undefined) pending.startError = error
      else {
        this.#pending.delete(id)
        pending.failed(error)
        this.#idleSoon()
      }
    } else if (kind === 'exit') {
      this.#pending.delete(id)
      const [code, signal] = words.slice(2).map(Number)
      if (pending.startError) pending.exited({ code: null, signal: null, error: pending.startError })
      else
        pending.exited(
          signal ? { code: null, signal: SIGNAL_NAMES.get(signal as number) ?? 'SIGKILL' } : { code: code as number, signal: null },
        )
      this.#idleSoon()
    }
  }

  /** With no script left, the helper ends after IDLE_MS and no longer keeps the agent's loop alive. */
  #idleSoon(): void {
    if (this.#pending.size > 0) return
    this.#hold(false)
    this.#idle = setTimeout(() => this.#retire(), IDLE_MS).unref()
  }

  /** Whether the helper keeps the agent's event loop alive: only while scripts run. */
  #hold(on: boolean): void {
    for (const handle of [this.#child, this.#child.stdin, this.#child.stdout] as ({ ref?: () => void; unref?: () => void } | null)[]) {
      if (on) handle?.ref?.()
      else handle?.unref?.()
    }
  }

  /** No new scripts through this helper; its stdin closes, so it ends. */
  #retire(): void {
    if (this.#gone) return
    this.#gone = true
    clearTimeout(this.#idle)
    this.#child.stdin?.end()
    this.#onGone()
  }

  #failAll(error: Error): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id)
      pending.failed(error)
      pending.exited({ code: null, signal: null, error, unreported: true })
    }
  }
}

let helper: Helper | undefined
let sequence = 0
/** Whether scripts go through the helper; false where Perl is missing (then Node forks them). */
let enabled = existsSync(PERL)

/** For tests: start scripts the other way (Node's own spawn). */
export function useScriptHelper(on: boolean): void {
  enabled = on && existsSync(PERL)
}

export function scriptHelperEnabled(): boolean {
  return enabled
}

/** Forks `argv` through the helper, held before exec; rejects when it cannot be forked (the reason as message). */
export function spawnThroughHelper(request: SpawnRequest): Promise<HeldScript> {
  if (!helper?.usable) {
    const current: Helper = new Helper(() => {
      if (helper === current) helper = undefined
    })
    helper = current
  }
  return helper.start(request, String(++sequence))
}
