// Tasks this browser started, by the object they work on (save, convert, delete, create VM).
// The API reads a task by id (GET /tasks/{id}); the console remembers the ids it was given.
const KEY = 'hostimage.tasks'
const PER_TARGET = 50

type Registry = Record<string, { id: string; at: number }[]>

function read(): Registry {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || '{}')
    return value && typeof value === 'object' ? (value as Registry) : {}
  } catch {
    return {}
  }
}

export function rememberTask(targetId: string, taskId: string | undefined): void {
  if (!taskId) return
  const reg = read()
  const list = (reg[targetId] || []).filter((t) => t.id !== taskId)
  list.unshift({ id: taskId, at: Date.now() })
  reg[targetId] = list.slice(0, PER_TARGET)
  // Keep the registry small: the 200 most recently used targets.
  const targets = Object.entries(reg).sort((a, b) => (b[1][0]?.at || 0) - (a[1][0]?.at || 0))
  localStorage.setItem(KEY, JSON.stringify(Object.fromEntries(targets.slice(0, 200))))
}

export function tasksOf(targetId: string): string[] {
  return (read()[targetId] || []).map((t) => t.id)
}
