// The signed-in user: token, whoami, console view (remembered in the browser per user),
// settings and the projects the project switcher offers.
import { computed, reactive } from 'vue'
import { api, type Project, type SettingsOut, type TokenOut, type View, type WhoAmI } from '@/api'
import { getToken, setToken } from '@/api/client'
import { viewsOf } from '@/utils/permissions'

// The view is remembered per user (key + user id), so a reload or a new tab keeps it and the
// next person to sign in on the same browser does not inherit it.
const VIEW_KEY = 'hostimage.view'
localStorage.removeItem(VIEW_KEY) // the browser-wide key of earlier versions

interface SessionState {
  who: WhoAmI | null
  view: View
  settings: SettingsOut | null
  projects: Project[]
  ready: boolean
}

export const session = reactive<SessionState>({
  who: null,
  view: 'project',
  settings: null,
  projects: [],
  ready: false,
})

export const threeLevel = computed(() => !!session.settings?.three_level_permissions)
export const isLoggedIn = computed(() => !!getToken() && !!session.who)

function viewKey(who: WhoAmI): string {
  return `${VIEW_KEY}.${who.user.id}`
}

/** The view remembered for this user, if any. */
export function rememberedView(who: WhoAmI): View | null {
  return (localStorage.getItem(viewKey(who)) as View | null) || null
}

function remember(who: WhoAmI, view: View): void {
  localStorage.setItem(viewKey(who), view)
}

/**
 * The view to show: the first of `preferred` that the user's roles allow, else the highest view
 * they have (a remembered view the user may no longer use falls back the same way).
 */
export function chooseView(who: WhoAmI, ...preferred: (View | null | undefined)[]): View {
  const views = viewsOf(who)
  for (const v of preferred) if (v && views.includes(v)) return v
  const highest = who.highest_view as View
  return views.includes(highest) ? highest : views[views.length - 1] || 'project'
}

async function loadContext(): Promise<void> {
  const [settings, projects] = await Promise.all([api.settings(), api.projects().catch(() => ({ items: [] as Project[] }))])
  session.settings = settings
  session.projects = projects.items
}

/** Take the user from a token or whoami answer and settle the view: `current` first (a project
 * switch keeps the view on screen), then the one remembered for this user, then the highest. */
function adopt(out: TokenOut | WhoAmI, current?: View): void {
  const who: WhoAmI = { user: out.user, project: out.project, roles: out.roles, highest_view: out.highest_view, views: out.views }
  session.who = who
  session.view = chooseView(who, current, rememberedView(who))
  // What is on screen is what a reload or a new tab shows, including the view a login chose.
  remember(who, session.view)
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
  // A login starts in the view this user last used here, else in the highest view they have.
  adopt(out)
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
  adopt(out, session.view)
}

/** Switch the view (one the user's roles allow) and remember it for this user. */
export function setView(view: View): void {
  if (!session.who) return
  session.view = chooseView(session.who, view)
  remember(session.who, session.view)
}

export async function reloadSettings(): Promise<void> {
  session.settings = await api.settings()
}
