// Run a host-image action on one image (single endpoint) or on several (batch endpoint with
// per-item results), the way the dialogs need it.
import { ref } from 'vue'
import { message } from 'ant-design-vue'
import { api, type BatchAction, type HostImage } from '@/api'
import { errorText, t } from '@/i18n'
import type { ItemResult } from './BatchResults.vue'

export function useSubmit(emitDone: () => void) {
  const submitting = ref(false)
  const error = ref('')
  const results = ref<ItemResult[] | null>(null)

  function reset() {
    submitting.value = false
    error.value = ''
    results.value = null
  }

  /** Returns true when the dialog may close (single success). */
  async function run(
    items: HostImage[],
    batch: boolean,
    action: BatchAction,
    params: Record<string, unknown> | undefined,
    single: (img: HostImage) => Promise<unknown>,
  ): Promise<boolean> {
    error.value = ''
    submitting.value = true
    try {
      if (!batch && items.length === 1) {
        await single(items[0])
        message.success(t('common.done'))
        emitDone()
        return true
      }
      const out = await api.batch({ action, ids: items.map((i) => i.id), params: params ?? {} })
      const names = new Map(items.map((i) => [i.id, i.name]))
      results.value = out.results.map((r) => ({ id: r.id, name: names.get(r.id) || r.id, ok: r.ok, error: r.error, taskId: r.task_id ?? undefined }))
      emitDone()
      return false
    } catch (err) {
      error.value = errorText(err)
      return false
    } finally {
      submitting.value = false
    }
  }

  return { submitting, error, results, reset, run }
}
