// Cutting a stream of unknown length into upload parts (S3 multipart parts, Swift segments).

/** Part n (from 1) is `first` bytes, doubled every `growEvery` parts, at most `max`. */
export function growingPartSize(first: number, growEvery: number, max: number): (partNumber: number) => number {
  return (partNumber) => Math.min(max, first * 2 ** Math.floor((partNumber - 1) / growEvery))
}

/** Cuts a stream into parts of the given sizes; the last one is marked (read one chunk ahead). */
export async function* parts(source: AsyncIterable<Buffer>, sizeOf: (n: number) => number): AsyncGenerator<{ number: number; data: Buffer; last: boolean }> {
  let number = 1
  let part = Buffer.allocUnsafe(sizeOf(number))
  let filled = 0
  let held: Buffer | undefined
  for await (const chunk of source) {
    let offset = 0
    while (offset < chunk.length) {
      if (held) {
        yield { number: number - 1, data: held, last: false }
        held = undefined
      }
      const n = Math.min(part.length - filled, chunk.length - offset)
      chunk.copy(part, filled, offset, offset + n)
      filled += n
      offset += n
      if (filled === part.length) {
        held = part
        number++
        part = Buffer.allocUnsafe(sizeOf(number))
        filled = 0
      }
    }
  }
  if (held && filled === 0) yield { number: number - 1, data: held, last: true }
  else {
    if (held) yield { number: number - 1, data: held, last: false }
    yield { number, data: part.subarray(0, filled), last: true }
  }
}
