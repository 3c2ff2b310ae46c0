// Save the OpenAPI document of a running server to web/openapi.json (then `npm run api:types`).
// Usage: HOSTIMAGE_URL=http://127.0.0.1:8080 npm run api:fetch
import { writeFileSync } from 'node:fs'

const base = (process.env.HOSTIMAGE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '')
const res = await fetch(`${base}/api/v1/openapi.json`)
if (!res.ok) {
  console.error(`GET ${base}/api/v1/openapi.json answered ${res.status}`)
  process.exit(1)
}
const doc = await res.json()
writeFileSync(new URL('../openapi.json', import.meta.url), JSON.stringify(doc, null, 2) + '\n')
console.log(`openapi.json saved (${Object.keys(doc.paths).length} paths)`)
