// A dump generator for the streaming figures: writes SIZE bytes of incompressible data (one
// random 1 MiB block repeated) to the file OUT (a file or the BACKUP_STREAM pipe), paced at RATE
// bytes per second (0: as fast as the reader takes them). Prints nothing; exit 0 when done.
//   node bench/generator.ts SIZE RATE OUT
import { randomFillSync } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

const [size, rate, out] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] as string]
const CHUNK = 1024 * 1024
const block = randomFillSync(Buffer.allocUnsafe(CHUNK))
const stream = createWriteStream(out, { highWaterMark: CHUNK })
const started = performance.now()
for (let written = 0; written < size; ) {
  const n = Math.min(CHUNK, size - written)
  if (!stream.write(n === CHUNK ? block : block.subarray(0, n))) await once(stream, 'drain')
  written += n
  if (rate > 0) {
    // Never ahead of the schedule: wait until `written` bytes are due.
    const due = (written / rate) * 1000 - (performance.now() - started)
    if (due > 1) await new Promise((r) => setTimeout(r, due))
  }
}
stream.end()
await once(stream, 'finish')
