// Starts lifecycle scripts from a small helper process instead of from the agent itself.
//
// Node starts a child with fork(): libuv copies the whole agent's page tables (80-100 MB of
// resident memory) and holds the event loop meanwhile, ~2-2.5 ms per script on the development
// VM and more the larger the agent grows; a no-op backup's five scripts cost the agent ~10 ms that
// the Go agent (vfork) does not pay (docs/PERFORMANCE.md). Node has no vfork or posix_spawn, so a
// helper that is small does the forking: Perl, which every Debian and Ubuntu system has
// (perl-base is Essential), with only its core POSIX module.
//
// The helper starts with the first script of a busy spell and ends once no script has run for a
// while. For each script it forks a waiter, which forks the script (own session and process
// group, stdin /dev/null, exactly the environment and working directory asked for) and relays its
// stdout and stderr to the agent as framed chunks on the helper's stdout, then its exit code or
// signal. Output that arrives after the script exited is still relayed for PIPE_DRAIN_SECONDS;
// then the waiter closes the pipes, so a process the script left behind cannot hold the stage.
// Each frame is written at once and is smaller than PIPE_BUF, so frames of concurrent waiters
// never interleave.
//
// Requests on the helper's stdin are NUL-terminated fields (no shell, no quoting, any byte but
// NUL): id, cwd, argc, argv…, envc, NAME=value…. Answers, one per line (a chunk's bytes follow
// its line): `started <id> <pid>`, `failed <id> <reason>`, `out|err <id> <bytes>`,
// `exit <id> <code> <signal number>`.
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'

const PERL = '/usr/bin/perl'
/** The helper ends after this long without a running script (it costs ~5 MB while it lives). */
const IDLE_MS = 1_000

const PROGRAM = String.raw`
use strict; use warnings; use POSIX ();
my $DRAIN = 0.5;     # seconds of output still relayed after the script exited
my $CHUNK = 3900;    # frame payload: header + payload stay below PIPE_BUF (4096)
$SIG{CHLD} = 'IGNORE'; $SIG{PIPE} = 'DEFAULT';
binmode STDIN; binmode STDOUT;
sub field { local $/ = "\0"; my $f = <STDIN>; exit 0 unless defined $f; chomp $f; return $f }
sub say_ { my $m = shift; syswrite STDOUT, $m }
while (1) {
  my $id = field(); my $cwd = field();
  my @argv = map { field() } 1 .. field();
  my @env = map { field() } 1 .. field();
  my $waiter = fork;
  if (!defined $waiter) { say_ "failed $id fork: $!\n"; next }
  next if $waiter;
  $SIG{CHLD} = 'DEFAULT';
  pipe(my $or, my $ow) or do { say_ "failed $id pipe: $!\n"; POSIX::_exit(0) };
  pipe(my $er, my $ew) or do { say_ "failed $id pipe: $!\n"; POSIX::_exit(0) };
  pipe(my $xr, my $xw) or do { say_ "failed $id pipe: $!\n"; POSIX::_exit(0) };
  my $pid = fork;
  if (!defined $pid) { say_ "failed $id fork: $!\n"; POSIX::_exit(0) }
  if ($pid == 0) {
    # the script: every descriptor but 0-2 is close-on-exec ($^F), $xw tells the waiter why exec failed
    $SIG{$_} = 'DEFAULT' for grep { $_ ne 'KILL' && $_ ne 'STOP' } keys %SIG;
    POSIX::setsid();
    open(STDIN, '<', '/dev/null');
    POSIX::dup2(fileno($ow), 1); POSIX::dup2(fileno($ew), 2);
    if (!chdir $cwd) { syswrite $xw, "cwd $!"; POSIX::_exit(127) }
    %ENV = map { split /=/, $_, 2 } @env;
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    syswrite $xw, "exec $!"; POSIX::_exit(127);
  }
  close $ow; close $ew; close $xw;
  my $why = ''; sysread $xr, $why, 4096; close $xr;
  if ($why ne '') { waitpid $pid, 0; say_ "failed $id $why\n"; POSIX::_exit(0) }
  say_ "started $id $pid\n";
  my %open = (out => $or, err => $er);
  my ($status, $until);
  while (%open) {
    my $rin = ''; vec($rin, fileno($_), 1) = 1 for values %open;
    my $wait = defined $until ? $until - Time::HiRes::time() : 0.05;
    last if defined $until && $wait <= 0;
    my $rout = $rin;
    if (select($rout, undef, undef, $wait) > 0) {
      for my $name (keys %open) {
        next unless vec($rout, fileno($open{$name}), 1);
        my $buf;
        my $n = sysread $open{$name}, $buf, $CHUNK;
        if ($n) { say_ "$name $id $n\n$buf" } else { close $open{$name}; delete $open{$name} }
      }
    }
    if (!defined $status && waitpid($pid, POSIX::WNOHANG()) == $pid) { $status = $?; $until = Time::HiRes::time() + $DRAIN }
  }
  if (!defined $status) { waitpid $pid, 0; $status = $? }
  say_ sprintf("exit %s %d %d\n", $id, $status >> 8, $status & 127);
  POSIX::_exit(0);
}
`

/** What became of a script started through the helper. */
export interface SpawnedScript {
  pid: number
  /** Resolves with the exit once its output is relayed (or the drain time is over). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>
}

export interface SpawnRequest {
  argv: readonly string[]
  cwd: string
  env: Record<string, string>
  onStdout: (chunk: Buffer) => void
  onStderr: (chunk: Buffer) => void
}

type Exit = Awaited<SpawnedScript['exited']>

interface Pending {
  request: SpawnRequest
  started: (pid: number) => void
  failed: (error: Error) => void
  exited: (exit: Exit) => void
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]))

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
    this.#child = spawn(PERL, ['-MTime::HiRes', '-e', PROGRAM], { env: {}, stdio: ['pipe', 'pipe', 'inherit'] })
    this.#child.stdout?.on('data', (data: Buffer) => this.#read(data))
    // Waiters may still relay after the helper itself ended: their answers come until this.
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

  start(request: SpawnRequest, id: string): Promise<SpawnedScript> {
    clearTimeout(this.#idle)
    return new Promise((resolve, reject) => {
      let resolveExit: Pending['exited'] = () => {}
      const exited = new Promise<Exit>((r) => (resolveExit = r))
      this.#pending.set(id, {
        request,
        started: (pid) => resolve({ pid, exited }),
        failed: reject,
        exited: (exit) => resolveExit(exit),
      })
      const fields = [id, request.cwd, String(request.argv.length), ...request.argv]
      const env = Object.entries(request.env).map(([k, v]) => `${k}=${v}`)
      fields.push(String(env.length), ...env)
      this.#child.stdin?.write(`${fields.join('\0')}\0`)
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
      if (kind === 'started') pending?.started(Number(rest))
      else if (kind === 'failed') {
        this.#pending.delete(id)
        pending?.failed(new Error(line.slice(`failed ${id} `.length)))
      } else if (kind === 'exit') {
        this.#pending.delete(id)
        const [code, signal] = line.split(' ').slice(2).map(Number)
        pending?.exited(
          signal ? { code: null, signal: SIGNAL_NAMES.get(signal as number) ?? 'SIGKILL' } : { code: code as number, signal: null },
        )
        if (this.#pending.size === 0) this.#idle = setTimeout(() => this.#retire(), IDLE_MS).unref()
      }
    }
  }

  /** No new scripts through this helper; scripts already running still report through it. */
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
      pending.exited({ code: null, signal: null, error })
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

/** Starts `argv` through the helper; rejects when it cannot be started (the reason as message). */
export function spawnThroughHelper(request: SpawnRequest): Promise<SpawnedScript> {
  if (!helper?.usable) {
    const current: Helper = new Helper(() => {
      if (helper === current) helper = undefined
    })
    helper = current
  }
  return helper.start(request, String(++sequence))
}
