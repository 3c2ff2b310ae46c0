import { computed, ref } from 'vue'
import { createI18n } from 'vue-i18n'
import dayjs from 'dayjs'
import 'dayjs/locale/zh-cn'
import zhCN from './zh-CN'
import en from './en'
import { ApiError } from '@/api/client'
import { formatBytes } from '@/utils/format'

export type Lang = 'zh-CN' | 'en'
export const LANGS: { value: Lang; label: string }[] = [
  { value: 'zh-CN', label: '简体中文' },
  { value: 'en', label: 'English' },
]

const LANG_KEY = 'hostimage.lang'

function initialLang(): Lang {
  const saved = localStorage.getItem(LANG_KEY)
  return saved === 'en' || saved === 'zh-CN' ? saved : 'zh-CN'
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLang(),
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zhCN, en },
  missingWarn: false,
  fallbackWarn: false,
})

const current = ref<Lang>(initialLang())
dayjs.locale(current.value === 'zh-CN' ? 'zh-cn' : 'en')
document.documentElement.lang = current.value

export const lang = computed(() => current.value)

export function setLang(value: Lang): void {
  current.value = value
  i18n.global.locale.value = value
  localStorage.setItem(LANG_KEY, value)
  dayjs.locale(value === 'zh-CN' ? 'zh-cn' : 'en')
  document.documentElement.lang = value
}

export const t = (key: string, values?: Record<string, unknown>): string =>
  values ? i18n.global.t(key, values) : i18n.global.t(key)

// Codes whose sentence is followed by the server's detail (it names the field or value).
const WITH_DETAIL = new Set(['validation_error', 'invalid_network'])

/** The sentence of a code that needs values from the answer, or null. */
function specialText(err: ApiError): string | null {
  const p = err.problem
  switch (err.code) {
    case 'too_many_attempts':
      return err.retryAfter !== null ? t('errors.too_many_attempts_wait', { seconds: err.retryAfter }) : t('errors.too_many_attempts')
    case 'internal':
      return t('errors.internal', { id: err.requestId || '-' })
    case 'too_large':
      if (typeof p.limit !== 'number') return null
      if (err.status === 413) return t('errors.too_large_upload', { limit: formatBytes(p.limit) })
      if (typeof p.virtual_size === 'number') return t('errors.too_large_virtual', { size: formatBytes(p.virtual_size), limit: formatBytes(p.limit) })
      return null
    default:
      return null
  }
}

/** A sentence for an API error in the user's language: known codes are translated, the
 * server's `detail` is the fallback (and is added for validation errors). */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    const special = specialText(err)
    if (special) return special
    const key = `errors.${err.code}`
    if (i18n.global.te(key)) {
      const base = t(key)
      if (WITH_DETAIL.has(err.code) && err.detail) return `${base}: ${err.detail}`
      return base
    }
    if (err.detail) return err.detail
    return t('errors.unknown', { status: err.status })
  }
  if (err instanceof Error) return err.message
  return String(err)
}

/** Translate a batch item error `{code, detail}`. */
export function batchErrorText(error: { code: string; detail: string } | null | undefined): string {
  if (!error) return ''
  const key = `errors.${error.code}`
  return i18n.global.te(key) ? t(key) : error.detail
}
