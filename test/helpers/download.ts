// Storage.download writes into a file the caller opened (the agent creates it exclusively): the
// unit tests download to a path.
import { open } from 'node:fs/promises'
import type { Downloaded, Storage, TransferOptions } from '../../src/storage/storage.ts'

export async function downloadTo(
  storage: Pick<Storage, 'download'>,
  filename: string,
  path: string,
  options?: TransferOptions,
): Promise<Downloaded> {
  const file = await open(path, 'w')
  try {
    return await storage.download(filename, file, options)
  } finally {
    await file.close()
  }
}
