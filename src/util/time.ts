/** `YYYY-MM-DDTHH:MM:SS+00:00` in UTC, the timestamp format of the polling bodies. */
export function utcTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19)}+00:00`
}

/** `YYYY_MM_DD_HH_MM` in UTC, the prefix of generated backup file names. */
export function utcFileStamp(date: Date): string {
  const iso = date.toISOString()
  return `${iso.slice(0, 4)}_${iso.slice(5, 7)}_${iso.slice(8, 10)}_${iso.slice(11, 13)}_${iso.slice(14, 16)}`
}
