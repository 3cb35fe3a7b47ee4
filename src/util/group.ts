// Resolves the job_group setting (a group name or a numeric gid) to a gid. Node has no
// getgrnam, so a name is looked up with `getent group` (which also sees NSS sources such as
// LDAP), falling back to /etc/group where getent is missing.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'

export type GroupLookup = { ok: true; gid: number } | { ok: false; error: string }

const MAX_GID = 0xfffffffe

export async function resolveGroup(group: string): Promise<GroupLookup> {
  if (/^\d+$/.test(group)) {
    const gid = Number(group)
    return gid <= MAX_GID ? { ok: true, gid } : { ok: false, error: `gid ${group} is out of range` }
  }
  const line = (await getent(group)) ?? (await etcGroup(group))
  const gid = line?.split(':')[2]
  if (gid === undefined || !/^\d+$/.test(gid)) return { ok: false, error: `no group named ${group} on this machine` }
  return { ok: true, gid: Number(gid) }
}

async function getent(group: string): Promise<string | undefined> {
  try {
    const { stdout } = await promisify(execFile)('getent', ['group', '--', group], { timeout: 5000 })
    return stdout.split('\n')[0]
  } catch {
    return undefined // unknown group (exit 2) or no getent: /etc/group decides
  }
}

async function etcGroup(group: string): Promise<string | undefined> {
  const text = await readFile('/etc/group', 'utf8').catch(() => '')
  return text.split('\n').find((line) => line.split(':')[0] === group)
}
