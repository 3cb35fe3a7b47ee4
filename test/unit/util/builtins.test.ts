// node:http, node:https and node:tls reach src/ only through src/util/builtins.ts (process.getBuiltinModule, and
// https/tls on first use): an ESM import of node:http alone loads undici (~15 MB of RSS).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const SRC = new URL('../../../src/', import.meta.url).pathname

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

describe('built-in modules with a costly namespace', () => {
  it('are imported by src/ for their types only', () => {
    const offenders: string[] = []
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8')
      // every import statement (also across lines) of those modules that is not `import type`
      for (const m of text.matchAll(/^import\s+(type\s+)?[^']*?from\s+'node:(http|https|tls)'/gm)) {
        if (!m[1]) offenders.push(`${file.slice(SRC.length)}: ${m[0].split('\n')[0]}`)
      }
      if (/(?<!typeof )import\(\s*'node:(http|https|tls)'\s*\)/.test(text)) offenders.push(`${file.slice(SRC.length)}: dynamic import`)
    }
    assert.deepEqual(offenders, [])
  })

  it('load node:https and node:tls only when asked', async () => {
    const builtins = await import('../../../src/util/builtins.ts')
    assert.equal(typeof builtins.http.createServer, 'function')
    assert.equal(typeof builtins.https().createServer, 'function')
    assert.equal(typeof builtins.tls().connect, 'function')
  })
})
