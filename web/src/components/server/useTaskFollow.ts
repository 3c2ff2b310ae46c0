// Follow one task (create a VM, save an image, sync a host) until it ends, once a second.
import { onBeforeUnmount, ref } from 'vue'
import { message } from 'ant-design-vue'
import { api, type Task } from '@/api'
import { errorText } from '@/i18n'

export function useTaskFollow() {
  const task = ref<Task | null>(null)
  let timer: number | undefined

  function stop(): void {
    window.clearTimeout(timer)
  }

  async function follow(taskId: string, onEnd?: (t: Task) => void): Promise<void> {
    stop()
    try {
      task.value = await api.task(taskId)
    } catch (err) {
      message.error(errorText(err))
      return
    }
    if (task.value.status === 'queued' || task.value.status === 'running') timer = window.setTimeout(() => follow(taskId, onEnd), 1000)
    else onEnd?.(task.value)
  }

  onBeforeUnmount(stop)
  return { task, follow, stop }
}
