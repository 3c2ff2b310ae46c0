// How a task reads in the console: its kind, its status (a task back in the queue after a
// transient failure is "retrying", not plain "queued") and the note under it (the retry's
// reason, or a failed task's error).
import type { Task } from '@/api'
import { i18n, t } from '@/i18n'

type TaskLike = Pick<Task, 'kind' | 'status' | 'attempts' | 'error'>

/** Queued again after a run failed on something transient: it will be tried again. */
export function isRetrying(task: TaskLike): boolean {
  return task.status === 'queued' && task.attempts >= 1 && !!task.error
}

/** The status to show: `retrying` for a task waiting for its next attempt. */
export function taskStatus(task: TaskLike): string {
  return isRetrying(task) ? 'retrying' : task.status
}

/** The task's kind in the user's language (the code itself for a kind the console does not know). */
export function taskKindText(kind: string): string {
  const key = `tasks.kinds.${kind}`
  return i18n.global.te(key) ? t(key) : kind
}

/** What to say under a task: why it is retrying, or why it failed; null otherwise. */
export function taskNote(task: TaskLike): { type: 'retry' | 'error'; text: string } | null {
  if (isRetrying(task)) return { type: 'retry', text: t('tasks.retrying', { n: task.attempts, error: task.error }) }
  if (task.status === 'failed' && task.error) return { type: 'error', text: task.error }
  return null
}
