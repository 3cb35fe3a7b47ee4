// Scripts started through the small helper process (src/scripts/spawner.ts) behave exactly as
// scripts Node spawns itself: the same output, exit codes, signals, environment, working
// directory, session and process group. Every case runs every way (the compiled helper, the Perl
// one, Node's spawn), with real processes.
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { isHeldScript } from '../../../src/scripts/held.ts'
import { isZombie, processGroupOf, processStartTime, waitForGroupExit } from '../../../src/scripts/process-group.ts'
import { runScript, type ScriptRun } from '../../../src/scripts/run.ts'
import { helperChildren } from '../../helpers/processes.ts'
import { spawnSync } from 'node:child_process'
import { COMPILED_HELPER, helperProgram, scriptHelperKind, spawnThroughHelper, useScriptHelper } from '../../../src/scripts/spawner.ts'

const dir = mkdtempSync(join(tmpdir(), 'spawner-'))
after(() => {
  useScriptHelper(true)
  rmSync(dir, { recursive: true, force: true })
})

/** The helper's children that are held (its spare). */
function spareOf(helper: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === helper && isHeldScript(p)
      } catch {
        return false
      }
    })
}

/** The running helper of this kind (one of the other kind may still be ending after a switch). */
function helperOf(kind: 'compiled' | 'perl'): number | undefined {
  return helperChildren().find((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/exe`).includes(kind === 'perl' ? 'perl' : 'script-helper')
    } catch {
      return false
    }
  })
}

function script(name: string, body: string): void {
  writeFileSync(join(dir, name), body)
  chmodSync(join(dir, name), 0o700)
}

const run = (stage: string, extra: Partial<ScriptRun> = {}) =>
  runScript({
    stage,
    scriptsPath: dir,
    args: [],
    cwd: dir,
    env: { PATH: '/usr/bin:/bin', ODD: 'a b\n=c$(x)' },
    secrets: [],
    logMaxBytes: 1 << 20,
    ...extra,
  })

it('the compiled helper is used on this machine (tools/build-native.sh built it; Perl is there too)', () => {
  assert.equal(scriptHelperKind(), 'compiled', `${COMPILED_HELPER} is missing: npm test builds it (tools/build-native.sh)`)
  assert.doesNotThrow(() => useScriptHelper('perl'), '/usr/bin/perl is missing: the Perl helper would go untested')
  useScriptHelper(true)
})

const HELPERS = ['compiled', 'perl'] as const
for (const helper of [...HELPERS, 'none'] as const) {
  describe(helper === 'none' ? "through Node's spawn" : `through the ${helper} helper`, () => {
    it('output, exit code, exact environment, working directory, stdin, own session and group', async () => {
      useScriptHelper(helper)
      script(
        'facts',
        'echo "args:$*"; echo to-stderr >&2; env -0 | grep -zv "^_=" | sort -z | tr "\\0\\n" "|~"; echo; pwd; read -r line; echo "stdin:$?"; ps -o pid=,pgid=,sid= -p $$; exit 4\n',
      )
      const result = await run('facts', { args: ['one', 'two words'] })
      assert.match(String(result.failure?.message), /^facts script failed with exit code 4$/)
      assert.equal(result.stderr, 'to-stderr\n')
      const lines = result.stdout.split('\n')
      assert.equal(lines[0], 'args:one two words')
      // the environment given, and what bash adds itself; nothing of the agent's or the helper's
      assert.equal(lines[1], `ODD=a b~=c$(x)|PATH=/usr/bin:/bin|PWD=${dir}|SHLVL=1|`)
      assert.equal(lines[2], dir)
      assert.equal(lines[3], 'stdin:1', 'stdin is empty (/dev/null)')
      const [pid, pgid, sid] = (lines[4] ?? '').trim().split(/\s+/).map(Number)
      assert.ok(pid && pid === pgid && pid === sid, `its own session and group: ${lines[4]}`)
    })

    it('a signal that ends the script is reported as such', async () => {
      useScriptHelper(helper)
      script('signalled', 'kill -USR1 $$\nsleep 5\n')
      const result = await run('signalled')
      assert.equal(result.failure?.message, 'signalled script was killed by SIGUSR1')
    })

    it('a missing working directory: could not be started, with the reason', async () => {
      useScriptHelper(helper)
      script('nowhere', 'exit 0\n')
      const result = await run('nowhere', { cwd: join(dir, 'missing') })
      assert.match(
        String(result.failure?.message),
        /^nowhere script could not be started: its working directory .*missing is missing or not a directory/,
      )
    })

    it('a stop reaches the group; output written after the exit is kept for a moment, a holder cannot hold the stage', async () => {
      useScriptHelper(helper)
      script('holder', 'echo first\n(sleep 0.1; echo late) &\n(exec sleep 30) &\nexit 0\n')
      const started = performance.now()
      const result = await run('holder')
      assert.equal(result.failure, undefined)
      assert.equal(result.stdout, 'first\nlate\n')
      assert.ok(performance.now() - started < 5_000, 'the stage ended long before the holder')
      let pid = 0
      script('stopped', 'sleep 30 & wait\n')
      const stop = new AbortController()
      const stopped = run('stopped', { signal: stop.signal, onSpawn: (p) => (pid = p) })
      await sleep(200)
      stop.abort('stopped by the test')
      assert.equal((await stopped).failure?.message, 'stopped by the test')
      assert.ok(await waitForGroupExit(pid, 2_000), 'nothing of the group is left')
    })

    it('large output arrives whole and in order; concurrent scripts keep theirs apart', async () => {
      useScriptHelper(helper)
      script('large', 'for i in $(seq 1 20000); do echo "line $1 $i"; done\n')
      const results = await Promise.all(['a', 'b', 'c'].map((tag) => run('large', { args: [tag] })))
      for (const [k, tag] of ['a', 'b', 'c'].entries()) {
        const lines = results[k]?.stdout.trimEnd().split('\n') ?? []
        assert.equal(lines.length, 20000)
        assert.ok(
          lines.every((line, i) => line === `line ${tag} ${i + 1}`),
          `script ${tag}'s output only, in order`,
        )
      }
    })

    it('a script ending while the output of another waits on a full pipe to a busy agent loses nothing', async () => {
      useScriptHelper(helper)
      script('flood', 'head -c 1000000 /dev/zero | tr "\\0" x\n')
      script('brief', 'touch "$1"; sleep 0.3\n')
      const started = join(dir, `brief-started-${helper}`)
      const flood = run('flood')
      const brief = run('brief', { args: [started] })
      while (!existsSync(started)) await sleep(5)
      // The agent busy for a second: the relay's pipe fills and its write blocks; meanwhile the
      // brief script ends and its SIGCHLD interrupts that write (EINTR), which must be retried.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000)
      const [flooded, briefed] = await Promise.all([flood, brief])
      assert.equal(briefed.failure, undefined)
      assert.equal(flooded.failure, undefined, flooded.failure?.message)
      assert.equal(flooded.stdout, 'x'.repeat(1_000_000))
    })
  })
}

it('the helper program compiles under strict and warnings, and loads no module (each stays resident while a dump runs)', async () => {
  const program = helperProgram({ setsid: 112, clockGettime: 228 })
  const check = spawnSync('/usr/bin/perl', ['-Mstrict', '-Mwarnings', '-c', '-e', program], { encoding: 'utf8' })
  assert.equal(check.stderr, '-e syntax OK\n')
  assert.doesNotMatch(program, /^\s*(use|require|no)\s/m)
  useScriptHelper('perl')
  script('quick', 'exit 0\n')
  await run('quick')
  const helper = helperOf('perl')
  assert.ok(helper)
  assert.doesNotMatch(readFileSync(`/proc/${helper}/maps`, 'utf8'), /\/auto\//, 'no XS module mapped')
})

it('the compiled helper and a held child hold little memory (the helper stays resident while a dump runs)', async () => {
  useScriptHelper('compiled')
  script('long', 'sleep 0.3\n')
  const long = run('long')
  await sleep(150)
  const helper = helperOf('compiled')
  const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
  assert.ok(rss(helper as number) < 2048, `the helper holds ${rss(helper as number)} kB`)
  assert.equal((await long).failure, undefined)
  // forked right after the script's end was reported: it may not be there yet
  let spare: number | undefined
  for (let i = 0; i < 100 && spare === undefined; i++) {
    await sleep(10)
    spare = spareOf(helper as number)[0]
  }
  assert.ok(spare && rss(spare) < 2048, 'the spare forked at its end holds little too')
})

for (const kind of HELPERS) {
  describe(`the ${kind} helper`, () => {
    it('a spare killed before it was claimed is replaced; the next script runs', async () => {
      useScriptHelper(kind)
      script('quick', 'exit 0\n')
      await run('quick')
      const helper = helperOf(kind)
      let spares: number[] = []
      for (let i = 0; i < 100 && spares.length === 0; i++) {
        await sleep(10) // forked as the script ended
        spares = spareOf(helper as number)
      }
      assert.equal(spares.length, 1, 'a spare waits after a short script ended')
      process.kill(spares[0] as number, 'SIGKILL')
      await sleep(100)
      const result = await run('quick')
      assert.equal(result.failure, undefined)
    })

    it('no spare beside a running script; one forked at its end waits for the next, and is dropped when not claimed within a second', async () => {
      useScriptHelper(kind)
      script('long', 'sleep 0.8\n')
      const long = run('long')
      await sleep(300)
      const helper = helperOf(kind)
      assert.deepEqual(spareOf(helper as number), [], 'nothing held beside a dump')
      assert.equal((await long).failure, undefined)
      let forked: number[] = []
      for (let i = 0; i < 50 && forked.length === 0; i++) {
        forked = spareOf(helper as number)
        if (forked.length === 0) await sleep(10)
      }
      assert.equal(forked.length, 1, 'forked as the script ended, right after its end was reported')
      await sleep(1_200)
      assert.deepEqual(spareOf(helper as number), [], 'dropped: nothing held beside what the job still does')
      assert.equal((await run('long')).failure, undefined, 'the next start asks for one')
    })

    it('starts side by side while no script ends (jobs in their dumps): each gets a spare and runs', async () => {
      useScriptHelper(kind)
      script('hold', 'touch "$1"; sleep 2\n')
      const marks = [1, 2, 3, 4, 5].map((n) => join(dir, `side-by-side-${kind}-${n}`))
      const runs = marks.map((mark) => run('hold', { args: [mark] }))
      const deadline = Date.now() + 1_500 // before the first ends
      while (!marks.every((m) => existsSync(m)) && Date.now() < deadline) await sleep(20)
      assert.deepEqual(
        marks.filter((m) => !existsSync(m)),
        [],
        'every script started while the others still ran',
      )
      for (const result of await Promise.all(runs)) assert.equal(result.failure, undefined)
    })

    it('the helper killed between scripts: a start at that instant ends (run or failed, never hangs), the next runs on a new helper', async () => {
      useScriptHelper(kind)
      script('quick', 'exit 0\n')
      // The instants after the kill differ by when the agent has read the helper's end and its exit.
      for (let delay = 0; delay < 20; delay++) {
        await run('quick')
        for (const pid of helperChildren()) process.kill(pid, 'SIGKILL')
        await sleep(delay % 10)
        const atOnce = await Promise.race([run('quick').then(() => 'ended'), sleep(5_000, undefined, { ref: false }).then(() => 'hung')])
        assert.equal(atOnce, 'ended', `a start ${delay % 10} ms after the helper was killed`)
      }
      await sleep(100)
      assert.equal((await run('quick')).failure, undefined)
    })

    it('output in the pipes when the script ended is all relayed, however long the agent is busy afterwards', async () => {
      useScriptHelper(kind)
      // Its pipes (1 MiB: F_SETPIPE_SZ) take all of its output, so it ends at once with most of
      // it unread. The agent reads slowly (1 ms a chunk) until the helper has reaped it (its
      // /proc entry is gone: the drain time runs, which bounds only output arriving later), then
      // stays busy well past that time; the helper must relay the rest all the same.
      const program = `fcntl($_, 1031, 1 << 20) or die "F_SETPIPE_SZ: $!" for *STDOUT, *STDERR; print "o" x 900_000; print STDERR "e" x 300_000`
      const out: Buffer[] = []
      const err: Buffer[] = []
      let pid = 0
      let reapedWhileBusy = false
      const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
      const held = await spawnThroughHelper({
        argv: ['perl', '-e', program],
        cwd: dir,
        env: { PATH: '/usr/bin:/bin' },
        onStdout: (chunk) => {
          out.push(chunk)
          if (reapedWhileBusy) return
          if (existsSync(`/proc/${pid}`)) return void pause(1)
          reapedWhileBusy = true
          pause(1_500)
        },
        onStderr: (chunk) => err.push(chunk),
      })
      pid = held.pid
      held.go()
      assert.deepEqual(await held.exited, { code: 0, signal: null })
      assert.equal(reapedWhileBusy, true, 'the helper reaped the script while most of its output was still to relay')
      assert.equal(Buffer.concat(out).toString(), 'o'.repeat(900_000))
      assert.equal(Buffer.concat(err).toString(), 'e'.repeat(300_000))
    })

    it('the helper ends a moment after its last script', async () => {
      useScriptHelper(kind)
      script('quick', 'exit 0\n')
      await run('quick')
      assert.equal(helperChildren().length, 1, 'one helper runs while scripts do, nothing per script')
      await sleep(2_500)
      assert.deepEqual(helperChildren(), [])
    })

    describe('held until its pid is recorded', () => {
      const request = (marker: string, onRunning?: () => void) => ({
        onRunning,
        argv: ['bash', join(dir, 'mark'), marker],
        cwd: dir,
        env: { PATH: '/usr/bin:/bin' },
        onStdout: () => {},
        onStderr: () => {},
      })

      it('a forked script does nothing before go(), carries the held title in a group of its own, then runs and says so before its exit', async () => {
        useScriptHelper(kind)
        script('mark', 'touch "$1"\n')
        const marker = join(dir, `marked-after-go-${kind}`)
        const events: string[] = []
        const held = await spawnThroughHelper(request(marker, () => events.push('running')))
        assert.ok(held.pid > 1)
        assert.equal(isHeldScript(held.pid), true, 'the title from its first instant')
        await sleep(300)
        assert.equal(processGroupOf(held.pid), held.pid, "its own group while held: a signal to the agent's group misses it")
        assert.equal(existsSync(marker), false, 'nothing ran before go()')
        assert.equal(events.length, 0)
        held.go()
        const exit = await held.exited
        events.push('exit')
        assert.deepEqual(exit, { code: 0, signal: null })
        assert.equal(existsSync(marker), true)
        assert.deepEqual(events, ['running', 'exit'], 'told that it runs, before its exit, even for a script this quick')
      })

      it('a child that was not let run is never said to run: killed while held, or its exec failed', async () => {
        useScriptHelper(kind)
        let running = 0
        const held = await spawnThroughHelper(request(join(dir, `killed-held-${kind}`), () => running++))
        process.kill(held.pid, 'SIGKILL')
        assert.deepEqual(await held.exited, { code: null, signal: 'SIGKILL' })
        const missing = await spawnThroughHelper({ ...request('x', () => running++), argv: ['/nonexistent/bash'] })
        missing.go()
        assert.match(String((await missing.exited).error?.message), /^exec \/nonexistent\/bash: No such file/)
        assert.equal(running, 0)
      })

      it('the helper ends (with the agent, or under it): a child it held ends too, without running', async () => {
        useScriptHelper(kind)
        script('mark', 'touch "$1"\n')
        const marker = join(dir, `never-marked-${kind}`)
        const held = await spawnThroughHelper(request(marker))
        const exited = held.exited
        for (const pid of helperChildren()) process.kill(pid, 'SIGKILL')
        assert.equal((await exited).unreported, true)
        const deadline = Date.now() + 2_000
        while (processStartTime(held.pid) !== undefined && !isZombie(held.pid) && Date.now() < deadline) await sleep(20)
        assert.ok(processStartTime(held.pid) === undefined || isZombie(held.pid), 'the held child is gone')
        await sleep(300)
        assert.equal(existsSync(marker), false, 'the script never ran')
      })
    })
  })
}
