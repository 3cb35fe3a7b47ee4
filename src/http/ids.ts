// Job ids, checked before anything else of a request. Kept apart from src/http/trigger.ts, whose
// schema validator is loaded on the first trigger: a poll must not wait for it.

const ID = /^[A-Za-z0-9._-]{1,128}$/

/** Why an id cannot name a job (it becomes a directory name), or undefined. */
export function idProblem(id: unknown): string | undefined {
  if (typeof id !== 'string' || id === '') return 'id is required'
  if (!ID.test(id) || id === '.' || id === '..') return 'id must be 1-128 characters of A-Z a-z 0-9 . _ - and not . or ..'
  return undefined
}

/** The id of a trigger body before any other check: a known id answers 409 whatever the rest says. */
export function triggerId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined
  for (const [key, value] of Object.entries(body)) if (key.toLowerCase() === 'id' && typeof value === 'string') return value
  return undefined
}
