// How LOCAL names what it keeps beside an object, and how it addresses a name in a folder it holds
// open: shared by the storage (storage.ts) and its clean-up (garbage.ts).
import type { FileHandle } from 'node:fs/promises'

/** A name in a folder held open: resolved from the handle, not from the path it was opened by. */
export const at = (folder: FileHandle, name: string) => `/proc/self/fd/${folder.fd}/${name}`

/** The object's metadata (its SHA-256, its stream format), hidden beside it. */
export const metadataName = (name: string) => `.${name}.meta.json`
