// Start and stop of a VM on a libvirt host run as tasks (a stop is a graceful shutdown, forced
// after a timeout): the VM list shows 开机中 / 关机中 until the task ends. The tasks are kept
// outside the page so that leaving the list and coming back still shows them.
import { reactive } from 'vue'
import { api, type Task } from '@/api'

export interface PowerTask {
  taskId: string
  start: boolean
  name: string
  task: Task | null
}

export const powerTasks = reactive(new Map<string, PowerTask>())

/** Remember the task of a start (`start`) or stop of server `id`. */
export function trackPower(id: string, name: string, taskId: string, start: boolean): void {
  powerTasks.set(id, { taskId, start, name, task: null })
}

/** Ask for every tracked task once; returns those that ended (and forgets them). */
export async function pollPower(): Promise<(PowerTask & { id: string })[]> {
  const ended: (PowerTask & { id: string })[] = []
  await Promise.all(
    [...powerTasks.entries()].map(async ([id, p]) => {
      try {
        p.task = await api.task(p.taskId)
      } catch {
        powerTasks.delete(id) // gone or no longer visible: stop following it
        return
      }
      if (p.task.status === 'succeeded' || p.task.status === 'failed') {
        powerTasks.delete(id)
        ended.push({ ...p, id })
      }
    }),
  )
  return ended
}
