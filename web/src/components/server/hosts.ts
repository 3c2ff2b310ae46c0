// Compute hosts as the VM pages use them: the list (every signed-in user may read it; only
// system administrators get URIs, pools and reasons), a host's label, and whether it can take
// a new VM.
import { computed, ref } from 'vue'
import { api, type Host } from '@/api'
import { ApiError } from '@/api/client'
import { errorText, t } from '@/i18n'

export const BUILTIN = 'builtin'

/** 内置 / Built-in for the built-in inventory, else the host's name (its id when unknown). */
export function hostLabel(host: Pick<Host, 'driver' | 'name'> | null | undefined, id?: string | null): string {
  if (host) return host.driver === 'builtin' ? t('hosts.builtin') : host.name
  return id === BUILTIN ? t('hosts.builtin') : id || '-'
}

/** Why a new VM cannot go to this host (it does not answer), or null. */
export function hostProblem(host: Host): string | null {
  if (host.status !== 'unreachable') return null
  return host.status_reason ? t('hosts.unreachableWhy', { reason: host.status_reason }) : t('hosts.unreachable')
}

/** The hosts, loaded on demand; a failure leaves the list empty (the pages still work with ids). */
export function useHosts() {
  const hosts = ref<Host[]>([])
  const byId = computed(() => new Map(hosts.value.map((h) => [h.id, h])))
  async function load(): Promise<void> {
    try {
      hosts.value = (await api.hosts()).items
    } catch {
      /* the host names fall back to ids */
    }
  }
  return { hosts, byId, load }
}

// What a host said goes after the sentence of these codes (which pool, which domain…).
const HOST_CODES = new Set(['host_error', 'host_unreachable'])

/** errorText, plus the server's detail for the codes whose detail is the host's own words. */
export function hostErrorText(err: unknown): string {
  const text = errorText(err)
  if (err instanceof ApiError && HOST_CODES.has(err.code) && err.detail && !text.includes(err.detail)) return `${text}: ${err.detail}`
  return text
}
