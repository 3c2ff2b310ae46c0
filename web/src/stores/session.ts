// The signed-in user: token, whoami, console view (remembered in the browser), settings and
// the projects the project switcher offers.
import { computed, reactive } from 'vue'
import { api, type Project, type SettingsOut, type TokenOut, type View, type WhoAmI } from '@/api'
import { getToken, setToken } from '@/api/client'
import { viewsOf } from '@/utils/permissions'

const VIEW_KEY = 'hostimage.view'

interface SessionState {
  who: WhoAmI | null
  view: View
  settings: SettingsOut | null
  projects: Project[]
  ready: boolean
}

export const session = reactive<SessionState>({
  who: null,
  view: (localStorage.getItem(VIEW_KEY) as View) || 'project',
  settings: null,
  projects: [],
  ready: false,
})

export const threeLevel = computed(() => !!session.settings?.three_level_permissions)
export const isLoggedIn = computed(() => !!getToken() && !!session.who)

/** Keep the remembered view within the views the user's roles allow. */
function clampView(): void {
  const views = viewsOf(session.who)
  if (!views.includes(session.view)) {
    const saved = localStorage.getItem(VIEW_KEY) as View | null
    session.view = saved && views.includes(saved) ? saved : views[views.length - 1] || 'project'
  }
}

async function loadContext(): Promise<void> {
  const [settings, projects] = await Promise.all([api.settings(), api.projects().catch(() => ({ items: [] as Project[] }))])
  session.settings = settings
  session.projects = projects.items
}

function adopt(out: TokenOut | WhoAmI): void {
  session.who = { user: out.user, project: out.project, roles: out.roles, highest_view: out.highest_view, views: out.views }
  clampView()
}

/** Restore the session from a stored token; false when there is none or it expired. */
export async function restore(): Promise<boolean> {
  if (!getToken()) {
    session.ready = true
    return false
  }
  try {
    adopt(await api.whoami())
    await loadContext()
    return true
  } catch {
    setToken(null)
    session.who = null
    return false
  } finally {
    session.ready = true
  }
}

export async function login(username: string, password: string, domain: string): Promise<void> {
  const out = await api.login({ username, password, domain: domain || 'Default' })
  setToken(out.token)
  adopt(out)
  // A fresh login starts in the highest view the user has, unless one was remembered.
  const saved = localStorage.getItem(VIEW_KEY) as View | null
  const views = viewsOf(session.who)
  session.view = saved && views.includes(saved) ? saved : (out.highest_view as View)
  await loadContext()
  session.ready = true
}

export async function logout(): Promise<void> {
  try {
    await api.logout()
  } catch {
    /* the token may already be gone */
  }
  clearSession()
}

export function clearSession(): void {
  setToken(null)
  session.who = null
  session.projects = []
}

export async function switchProject(projectId: string): Promise<void> {
  const out = await api.switchProject(projectId)
  setToken(out.token)
  adopt(out)
}

export function setView(view: View): void {
  session.view = view
  localStorage.setItem(VIEW_KEY, view)
}

export async function reloadSettings(): Promise<void> {
  session.settings = await api.settings()
}
