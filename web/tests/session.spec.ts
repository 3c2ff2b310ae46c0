import { beforeEach, describe, expect, it } from 'vitest'
import type { WhoAmI } from '@/api'
import { chooseView, rememberedView, session, setView } from '@/stores/session'

function who(id: string, views: WhoAmI['views'], highest: WhoAmI['highest_view']): WhoAmI {
  return { user: { id, name: id, domain_id: 'd1' }, project: null, roles: [], highest_view: highest, views } as WhoAmI
}

const admin = who('u-admin', ['project', 'domain', 'system'], 'system')
const domadmin = who('u-dom', ['project', 'domain'], 'domain')
const member = who('u-alice', ['project'], 'project')

beforeEach(() => localStorage.clear())

describe('the console view (SPEC §2: a mode the user picks, remembered in the browser)', () => {
  it('takes the first preferred view the roles allow, else the highest', () => {
    expect(chooseView(admin)).toBe('system')
    expect(chooseView(admin, 'domain')).toBe('domain')
    expect(chooseView(admin, null, 'project')).toBe('project')
    expect(chooseView(domadmin, 'system')).toBe('domain')
    expect(chooseView(member, 'system', 'domain')).toBe('project')
  })

  it('remembers a switch per user', () => {
    session.who = admin
    setView('project')
    expect(session.view).toBe('project')
    expect(rememberedView(admin)).toBe('project')
    expect(rememberedView(domadmin)).toBeNull()
    session.who = domadmin
    setView('system') // not one of the domain admin's views
    expect(session.view).toBe('domain')
    expect(rememberedView(domadmin)).toBe('domain')
    expect(rememberedView(admin)).toBe('project')
  })
})
