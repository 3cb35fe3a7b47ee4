// Masking against the real tools: bash (set -x, printf %q, ${x@Q}, declare -p, in the C and a
// UTF-8 locale), Python (json.dumps with and without ensure_ascii, urllib quote and quote_plus,
// repr, shlex.quote) and jq (JSON, @uri, @sh). The oracle is what each tool prints for the
// secret, asked of the tool itself; the variant generator of src/ is not used here.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { MASK, TailCapture, maskSecrets } from '../../../src/scripts/capture.ts'

const LOCALES = ['C', 'C.UTF-8']

// Each tool runs once over a batch of secrets (a file of NUL-terminated secrets): a process per
// secret and tool would make this test take minutes.

/** Python's renderings, one list per secret, sent back as JSON. */
const PYTHON_RENDER = `
import json, shlex, sys, unicodedata, urllib.parse
secrets = open(sys.argv[1], 'rb').read().decode('utf-8').split('\\0')[:-1]
out = [[json.dumps(s), json.dumps(s, ensure_ascii=False), urllib.parse.quote(s), urllib.parse.quote(s, safe=''),
        urllib.parse.quote_plus(s), repr(s), repr(s.encode()), shlex.quote(s)] for s in secrets]
# characters this Python's Unicode database does not know yet (Node's may): repr escapes them
unknown = [any(unicodedata.category(c) == 'Cn' for c in s) for s in secrets]
print(json.dumps([out, unknown]))
`

/** jq's renderings: the JSON string, @uri, @sh and an object holding it. */
const JQ_RENDER = '[split("\\u0000")[] | select(. != "") | [tojson, @uri, @sh, ({p: .} | tojson)]]'

/** bash's renderings, four NUL-terminated records per secret: printf %q, ${x@Q}, declare -p, xtrace. */
const BASH_RENDER = `
while IFS= read -r -d '' PW; do
  printf '%q\\0' "$PW"
  printf '%s\\0' "\${PW@Q}"
  declare -p PW; printf '\\0'
  (BASH_XTRACEFD=1; set -x; : "$PW"); printf '\\0'
done < "$1"
`

/** What a script under set -x prints when it shows the secret in those ways; NUL after each. */
const BASH_SCRIPT = `
exec 2>&1
while IFS= read -r -d '' PW; do
  (
    set -x
    : "$PW"
    echo "\${PW@Q}"
    printf '%q\\n' "$PW"
    declare -p PW
    x=$PW
    echo "$PW"
  )
  printf '\\0'
done < "$1"
`

function run(command: string, args: string[], env: Record<string, string>): string {
  const result = spawnSync(command, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, maxBuffer: 256 * 1024 * 1024 })
  assert.equal(result.error, undefined, `${command} could not run: ${result.error?.message}`)
  assert.equal(result.status, 0, `${command} failed: ${result.stderr?.toString()}`)
  return result.stdout.toString('utf8')
}

interface Printed {
  /** Each tool's own rendering of the secret, each asked for alone, per locale. */
  renderings: string[][]
  /** What a script printing it all showed, per locale. */
  outputs: string[]
  /** The secret has characters the tools' Unicode version does not know (see docs/SECURITY.md). */
  newerUnicode: boolean
}

function printedByTools(secrets: readonly string[]): Printed[] {
  const dir = mkdtempSync(join(tmpdir(), 'secret-forms-'))
  try {
    const file = join(dir, 'secrets')
    writeFileSync(file, secrets.map((s) => `${s}\0`).join(''))
    const [python, unknown] = JSON.parse(run('python3', ['-c', PYTHON_RENDER, file], { LC_ALL: 'C.UTF-8', PYTHONUTF8: '1' })) as [
      string[][],
      boolean[],
    ]
    const jq = JSON.parse(run('jq', ['-Rsc', JQ_RENDER, file], { LC_ALL: 'C.UTF-8' })) as string[][]
    const bash = LOCALES.map((locale) => run('bash', ['-c', BASH_RENDER, 'render', file], { LC_ALL: locale }).split('\0'))
    const scripts = LOCALES.map((locale) => run('bash', ['-c', BASH_SCRIPT, 'script', file], { LC_ALL: locale }).split('\0'))
    return secrets.map((secret, i) => {
      const tools = [...(python[i] ?? []), ...(jq[i] ?? [])]
      assert.equal(tools.length, 12, `python and jq rendered ${JSON.stringify(secret)}`)
      const renderings = bash.map((records) => {
        const [q, at, declared, trace] = records.slice(4 * i, 4 * i + 4).map(String) as [string, string, string, string]
        assert.ok(
          declared.startsWith('declare -- PW=') && trace.startsWith('+ : ') && trace.endsWith('\n'),
          JSON.stringify({ declared, trace }),
        )
        return [...tools, q, at, declared.slice('declare -- PW='.length, -1), trace.slice(4, -1)].map(String)
      })
      // the script's output, then the Python and jq lines it would print after it
      const outputs = scripts.map((chunks) => `${chunks[i]}${tools.join('\n')}\ndone\n`)
      return { renderings, outputs, newerUnicode: unknown[i] === true }
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A rendering and what is inside its outer quotes. */
function withInner(rendering: string): string[] {
  const inner =
    rendering.startsWith("$'") && rendering.endsWith("'") && rendering.length > 3
      ? rendering.slice(2, -1)
      : /^(['"]).*\1$/s.test(rendering) && rendering.length > 2
        ? rendering.slice(1, -1)
        : rendering
  // repr of bytes: b'…'
  const bytesInner = /^b(['"]).*\1$/s.test(rendering) ? rendering.slice(2, -1) : inner
  return [...new Set([rendering, inner, bytesInner])]
}

/** Characters shells and encoders treat specially, besides plain letters. */
const SPECIAL = [
  ' ',
  "'",
  '"',
  '\\',
  '$',
  '`',
  '!',
  '*',
  '%',
  '+',
  '&',
  '/',
  '~',
  '#',
  '=',
  '-',
  '<',
  '>',
  ';',
  '(',
  '{',
  '[',
  '?',
  '|',
  '\n',
  '\t',
  '\r',
  '\x01',
  '\x07',
  '\x1b',
  '\x7f',
  'é',
  'ß',
  '日',
  '😀',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\ufeff',
]
const LETTERS = ['a', 'b', 'Z', 'k', '0', '9', '_', '.']

const shellishSecrets = fc
  .array(fc.oneof(fc.constantFrom(...SPECIAL), fc.constantFrom(...LETTERS)), { minLength: 4, maxLength: 14 })
  .map((a) => a.join(''))
const unicodeSecrets = fc.string({ unit: 'grapheme', minLength: 4, maxLength: 10 }).filter((s) => !s.includes('\0') && [...s].length >= 4)

function assertMasked(secrets: readonly string[]): void {
  const printed = printedByTools(secrets)
  const checked = printed.filter((p) => !p.newerUnicode).length
  assert.ok(checked >= secrets.length * 0.8, `only ${checked} of ${secrets.length} secrets use characters the tools know`)
  secrets.forEach((secret, i) => {
    const { renderings, outputs, newerUnicode } = printed[i] as Printed
    if (newerUnicode) return
    for (const [l, raw] of outputs.entries()) {
      const capture = new TailCapture(1024 * 1024, [secret])
      // pushed in pieces, so forms straddle chunks
      const bytes = Buffer.from(raw)
      for (let at = 0; at < bytes.length; at += 7) capture.push(bytes.subarray(at, at + 7))
      const masked = capture.text()
      assert.ok(masked.includes(MASK) && masked.endsWith('done\n'), masked)
      for (const rendering of [secret, ...(renderings[l] as string[])]) {
        assert.ok(raw.includes(rendering), `the output holds ${JSON.stringify(rendering)}`)
        for (const form of withInner(rendering)) {
          if ([...form].length < 4) continue
          assert.ok(
            !masked.includes(form),
            `${JSON.stringify(form)} (of ${JSON.stringify(secret)}) survives with LC_ALL=${LOCALES[l]}:\n${masked}`,
          )
        }
      }
      // the same through maskSecrets (messages that quote output)
      const message = maskSecrets(raw, [secret])
      for (const rendering of [secret, ...(renderings[l] as string[])]) assert.ok(!message.includes(rendering), rendering)
    }
  })
}

describe('secret forms, against the real tools', () => {
  it("the example of the review: bash xtrace of it's-…", () => {
    const secret = "it's-a-Pa$$word"
    const [printed] = printedByTools([secret])
    assert.ok(printed?.outputs[1]?.includes(`+ : 'it'\\''s-a-Pa$$word'`), printed?.outputs[1]) // what the review saw
    assertMasked([secret])
  })

  it('masks every rendering of generated secrets with shell and encoder specials', () => {
    fc.assert(fc.property(fc.array(shellishSecrets, { minLength: 200, maxLength: 200 }), assertMasked), { numRuns: 4, endOnFailure: true })
  })

  it('masks every rendering of arbitrary Unicode secrets', () => {
    fc.assert(fc.property(fc.array(unicodeSecrets, { minLength: 100, maxLength: 100 }), assertMasked), { numRuns: 2, endOnFailure: true })
  })

  it('the oracle sees the tools print what masking must catch', () => {
    // each rendering differs from the raw secret, so the checks above test more than the raw form
    const secret = 'a\'b"c\\d e\n$é'
    const [printed] = printedByTools([secret])
    const forms = printed?.renderings.flat() ?? []
    assert.ok(forms.filter((f) => !f.includes(secret)).length >= 10, forms.join('\n'))
  })

  it('leaves secrets shorter than 4 characters alone', () => {
    const capture = new TailCapture(1000, ['abc', 'é日😀'])
    capture.push(Buffer.from('abc abcd é日😀'))
    assert.equal(capture.text(), 'abc abcd é日😀')
  })
})

/**
 * The byte encodings tools print, each asked of the tool itself, NUL after each record: base64
 * of the secret alone and after 1 and 2 other bytes (`user:` is 5 bytes: a Basic auth header),
 * in both alphabets (coreutils base64 and basenc, Python, jq's @base64), hex (Python, xxd) and
 * Perl's quotemeta of the bytes.
 */
const BYTE_RENDERERS: { name: string; command: string; args: string[]; prefix: string }[] = [
  {
    name: 'base64 -w0',
    command: 'bash',
    args: ['-c', `while IFS= read -r -d '' s; do printf %s "$s" | base64 -w0; printf '\\0'; done < "$1"`, 'r'],
    prefix: '',
  },
  {
    name: 'base64 of user:…',
    command: 'bash',
    args: ['-c', `while IFS= read -r -d '' s; do printf 'user:%s' "$s" | base64 -w0; printf '\\0'; done < "$1"`, 'r'],
    prefix: 'dXNlcj',
  },
  {
    name: 'basenc --base64url of x…',
    command: 'bash',
    args: ['-c', `while IFS= read -r -d '' s; do printf 'x%s' "$s" | basenc --base64url -w0; printf '\\0'; done < "$1"`, 'r'],
    prefix: 'e',
  },
  {
    name: 'jq @base64',
    command: 'bash',
    args: ['-c', `jq -Rsj 'split("\\u0000")[] | select(. != "") | (@base64 + "\\u0000")' "$1"`, 'r'],
    prefix: '',
  },
  {
    name: 'xxd -p',
    command: 'bash',
    args: ['-c', `while IFS= read -r -d '' s; do printf %s "$s" | xxd -p | tr -d '\\n'; printf '\\0'; done < "$1"`, 'r'],
    prefix: '',
  },
  {
    name: 'Python bytes.hex().upper()',
    command: 'python3',
    args: [
      '-c',
      `import sys
for s in open(sys.argv[1], 'rb').read().split(b'\\0')[:-1]: sys.stdout.buffer.write(s.hex().upper().encode() + b'\\0')`,
    ],
    prefix: '',
  },
  {
    name: 'Perl quotemeta',
    command: 'perl',
    args: ['-e', 'open(my $f, "<", $ARGV[0]) or die; local $/ = "\\0"; while (<$f>) { chomp; print quotemeta($_), "\\0" }'],
    prefix: '',
  },
]

describe('byte encodings of a secret, against the real tools', () => {
  /** Each tool's rendering of each secret, as bytes. */
  function rendered(secrets: readonly string[]): Map<string, Buffer[]> {
    const dir = mkdtempSync(join(tmpdir(), 'secret-bytes-'))
    try {
      const file = join(dir, 'secrets')
      writeFileSync(file, secrets.map((s) => `${s}\0`).join(''))
      const out = new Map<string, Buffer[]>()
      for (const { name, command, args } of BYTE_RENDERERS) {
        const result = spawnSync(command, [...args, file], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8' },
          maxBuffer: 64 * 1024 * 1024,
        })
        assert.equal(result.status, 0, `${name} failed: ${result.error?.message ?? result.stderr?.toString()}`)
        const records: Buffer[] = []
        let at = 0
        for (let nul = result.stdout.indexOf(0); nul >= 0; nul = result.stdout.indexOf(0, at)) {
          records.push(result.stdout.subarray(at, nul))
          at = nul + 1
        }
        assert.equal(records.length, secrets.length, `${name} rendered every secret`)
        out.set(name, records)
      }
      return out
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  function assertBytesMasked(secrets: readonly string[]): void {
    const byTool = rendered(secrets)
    secrets.forEach((secret, i) => {
      for (const { name, prefix } of BYTE_RENDERERS) {
        const rendering = (byTool.get(name) as Buffer[])[i] as Buffer
        const capture = new TailCapture(1024 * 1024, [secret])
        const raw = Buffer.concat([Buffer.from('before '), rendering, Buffer.from(' after\n')])
        for (let at = 0; at < raw.length; at += 5) capture.push(raw.subarray(at, at + 5))
        const masked = capture.text()
        const middle = masked.slice('before '.length, -' after\n'.length)
        if (!name.includes('base64')) {
          assert.equal(middle, MASK, `${name} of ${JSON.stringify(secret)}: ${JSON.stringify(masked)}`)
          continue
        }
        // base64: only the characters that mix in a neighbouring byte (or the padding) remain
        const [head, tail, ...more] = middle.split(MASK)
        assert.equal(more.length, 0, `${name} of ${JSON.stringify(secret)}: one mask in ${JSON.stringify(masked)}`)
        assert.ok(
          head !== undefined && tail !== undefined && head.length <= prefix.length + 2 && tail.replace(/=+$/, '').length <= 2,
          `${name} of ${JSON.stringify(secret)}: ${JSON.stringify(masked)}`,
        )
      }
    })
  }

  it('masks base64, hex and quotemeta of generated secrets', () => {
    fc.assert(fc.property(fc.array(shellishSecrets, { minLength: 100, maxLength: 100 }), assertBytesMasked), {
      numRuns: 3,
      endOnFailure: true,
    })
  })

  it('masks base64, hex and quotemeta of arbitrary Unicode secrets', () => {
    fc.assert(fc.property(fc.array(unicodeSecrets, { minLength: 100, maxLength: 100 }), assertBytesMasked), {
      numRuns: 2,
      endOnFailure: true,
    })
  })

  it('masks them for a long secret too', () => {
    assertBytesMasked(['L0ng/secret+with=padding?'.repeat(200), "é'\\n$x".repeat(1000)])
  })
})
