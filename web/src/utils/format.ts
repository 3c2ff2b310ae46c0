import dayjs from 'dayjs'

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** Bytes in binary units: 1536 → "1.5 KiB", 8388608 → "8 MiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return '-'
  if (bytes < 1024) return `${bytes} B`
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit += 1
  }
  const text = value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
  return `${text.replace(/\.0+$|(\.\d*[1-9])0+$/, '$1')} ${UNITS[unit]}`
}

/** MiB counts (min_disk_mb, min_ram_mb) in binary units. */
export function formatMiB(mib: number | null | undefined): string {
  if (mib === null || mib === undefined) return '-'
  return formatBytes(mib * 1024 * 1024)
}

/** A UTC ISO time from the server, shown in the browser's local time. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-'
  const d = dayjs(iso)
  return d.isValid() ? d.format('YYYY-MM-DD HH:mm:ss') : iso
}

/** Local calendar day → the UTC ISO instant of its local midnight (log filters). */
export function startOfLocalDay(day: string): string {
  return dayjs(day).startOf('day').toISOString()
}

/** The exclusive end of a local calendar day (the next local midnight) in UTC ISO. */
export function endOfLocalDay(day: string): string {
  return dayjs(day).startOf('day').add(1, 'day').toISOString()
}

export function shortChecksum(checksum: string | null | undefined, withAlgo = true): string {
  if (!checksum) return '-'
  const [algo, hex] = checksum.includes(':') ? checksum.split(':', 2) : ['', checksum]
  const short = hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-8)}` : hex
  return algo && withAlgo ? `${algo}:${short}` : short
}

/** RFC 4180 CSV with a UTF-8 byte order mark (spreadsheets then read Chinese correctly). */
export function toCsv(header: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  const cell = (v: string | number | boolean | null | undefined) => {
    const s = v === null || v === undefined ? '' : String(v)
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }
  return '\ufeff' + [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n'
}
