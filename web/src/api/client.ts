// A thin fetch wrapper around the REST API (types come from the generated `schema.d.ts`).

export const API_BASE = '/api/v1'

const TOKEN_KEY = 'hostimage.token'

let token: string | null = localStorage.getItem(TOKEN_KEY)
let onUnauthorized: (() => void) | null = null

export function getToken(): string | null {
  return token
}

export function setToken(value: string | null): void {
  token = value
  if (value) localStorage.setItem(TOKEN_KEY, value)
  else localStorage.removeItem(TOKEN_KEY)
}

/** Called when the API answers 401 (expired or revoked token). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler
}

export interface ProblemDetail {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  errors?: { loc: (string | number)[]; msg: string; type: string }[]
  /** The id of the request in the server log (every problem carries it). */
  request_id?: string
  /** `too_large`: the limit in bytes (and the image's `virtual_size` for a 422). */
  limit?: number
  virtual_size?: number
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), else null. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text)
  const at = Date.parse(text)
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000))
}

/** An error answer of the API (problem+json) or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly detail: string
  readonly problem: ProblemDetail
  /** Seconds to wait before trying again (`Retry-After` of a 429 or 503), if the answer said. */
  readonly retryAfter: number | null
  /** The request's id (problem body, else the `X-Request-ID` header), to quote in a report. */
  readonly requestId: string | null

  constructor(status: number, problem: ProblemDetail, headers?: { get(name: string): string | null }) {
    super(problem.detail || problem.title || `HTTP ${status}`)
    this.status = status
    this.code = problem.code || (status === 0 ? 'network' : `http_${status}`)
    this.detail = problem.detail || problem.title || ''
    this.problem = problem
    this.retryAfter = parseRetryAfter(headers?.get('Retry-After'))
    this.requestId = problem.request_id || headers?.get('X-Request-ID') || null
  }
}

export type QueryValue = string | number | boolean | null | undefined | (string | number)[]
export type Query = Record<string, QueryValue>

export function buildQuery(query?: Query): string {
  if (!query) return ''
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue
    if (Array.isArray(value)) {
      if (value.length) params.set(key, value.join(','))
    } else params.set(key, String(value))
  }
  const text = params.toString()
  return text ? `?${text}` : ''
}

function authHeaders(extra?: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = { Accept: 'application/json', ...extra }
  if (token) headers.Authorization = `Bearer ${token}`
  return headers
}

async function problemOf(res: Response): Promise<ProblemDetail> {
  try {
    const body = await res.json()
    if (body && typeof body === 'object') return body as ProblemDetail
  } catch {
    /* not JSON */
  }
  return { status: res.status, title: res.statusText }
}

async function send(method: string, path: string, query?: Query, body?: unknown, init?: RequestInit): Promise<Response> {
  let res: Response
  try {
    res = await fetch(API_BASE + path + buildQuery(query), {
      method,
      headers: authHeaders(body === undefined ? undefined : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      ...init,
    })
  } catch (err) {
    throw new ApiError(0, { detail: String(err), code: 'network' })
  }
  if (!res.ok) {
    const problem = await problemOf(res)
    if (res.status === 401 && path !== '/auth/login' && onUnauthorized) onUnauthorized()
    throw new ApiError(res.status, problem, res.headers)
  }
  return res
}

export async function request<T>(method: string, path: string, options: { query?: Query; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const res = await send(method, path, options.query, options.body, options.signal ? { signal: options.signal } : undefined)
  if (res.status === 204) return undefined as T
  const text = await res.text()
  return (text ? JSON.parse(text) : undefined) as T
}

export const http = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown, query?: Query) => request<T>('POST', path, { body: body ?? {}, query }),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  del: <T>(path: string) => request<T>('DELETE', path),
}

/** Fetch a file with the bearer token and hand it to the browser as a download. */
export async function download(path: string, query: Query, fallbackName: string): Promise<string> {
  const res = await send('GET', path, query)
  const blob = await res.blob()
  const disposition = res.headers.get('Content-Disposition') || ''
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition)
  const name = match ? decodeURIComponent(match[1]) : fallbackName
  saveBlob(blob, name)
  return name
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

/** PUT a file with upload progress (fetch has no upload progress events). */
export function uploadFile(path: string, file: Blob, onProgress: (percent: number) => void): { promise: Promise<unknown>; abort: () => void } {
  const xhr = new XMLHttpRequest()
  const promise = new Promise<unknown>((resolve, reject) => {
    xhr.open('PUT', API_BASE + path)
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`)
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) onProgress(Math.floor((ev.loaded / ev.total) * 100))
    }
    xhr.onload = () => {
      let body: unknown = undefined
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : undefined
      } catch {
        body = undefined
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body)
      else reject(new ApiError(xhr.status, (body as ProblemDetail) || { status: xhr.status }, { get: (name) => xhr.getResponseHeader(name) }))
    }
    xhr.onerror = () => reject(new ApiError(0, { code: 'network', detail: 'Network error' }))
    xhr.onabort = () => reject(new ApiError(0, { code: 'aborted', detail: 'Upload cancelled' }))
    xhr.send(file)
  })
  return { promise, abort: () => xhr.abort() }
}
