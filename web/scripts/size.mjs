// Print the gzipped size of every JavaScript file the build produced, and the total.
// Fails (exit 1) when the total is above the budget (400 KB gzipped).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const BUDGET = 400 * 1024
const dir = new URL('../../src/hostimage/web/dist/assets/', import.meta.url).pathname
let total = 0
const rows = []
for (const name of readdirSync(dir)) {
  if (!name.endsWith('.js')) continue
  const data = readFileSync(join(dir, name))
  const gz = gzipSync(data, { level: 9 }).length
  total += gz
  rows.push([name, data.length, gz])
}
rows.sort((a, b) => b[2] - a[2])
for (const [name, raw, gz] of rows) console.log(`${(gz / 1024).toFixed(1).padStart(8)} KB gz ${(raw / 1024).toFixed(1).padStart(9)} KB  ${name}`)
console.log(`${(total / 1024).toFixed(1).padStart(8)} KB gz total JavaScript (budget ${BUDGET / 1024} KB)`)
if (total > BUDGET) {
  console.error('JavaScript budget exceeded')
  process.exit(1)
}
