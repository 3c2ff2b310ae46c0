import { describe, expect, it } from 'vitest'
import { endOfLocalDay, formatBytes, shortChecksum, startOfLocalDay, toCsv } from '@/utils/format'
import { ALL, choiceFromForm, choiceOf, shareBody, shareLevel } from '@/utils/share'
import { checkChangeProject, checkDelete, checkEdit, checkShare, canWrite } from '@/utils/permissions'
import { isCidr, networkBody, networkProblem, splitDns } from '@/utils/network'
import { parseRetryAfter } from '@/api/client'
import type { HostImage, WhoAmI } from '@/api'

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B')
    expect(formatBytes(1023)).toBe('1023 B')
    expect(formatBytes(1536)).toBe('1.5 KiB')
    expect(formatBytes(8 * 1024 * 1024)).toBe('8 MiB')
    expect(formatBytes(12.25 * 1024 ** 3)).toBe('12.3 GiB')
    expect(formatBytes(null)).toBe('-')
  })
})

describe('dates and checksums', () => {
  it('turns local days into a [since, until) UTC range one day long', () => {
    const since = new Date(startOfLocalDay('2026-11-27')).getTime()
    const until = new Date(endOfLocalDay('2026-11-27')).getTime()
    expect(until - since).toBe(24 * 3600 * 1000)
    expect(new Date(since).getDate()).toBe(27)
  })
  it('shortens checksums', () => {
    expect(shortChecksum('sha256:' + 'a'.repeat(64))).toBe('sha256:aaaaaaaa…aaaaaaaa')
    expect(shortChecksum('sha256:' + 'a'.repeat(64), false)).toBe('aaaaaaaa…aaaaaaaa')
  })
  it('writes CSV with a BOM and quotes', () => {
    expect(toCsv(['名称', 'x'], [['a,b', 'say "hi"']])).toBe('\ufeff名称,x\r\n"a,b","say ""hi"""\r\n')
  })
})

describe('share choices (SPEC F4)', () => {
  const img = (share_scope: string, shared_domain_ids: string[] = []) => ({ share_scope, shared_domain_ids }) as HostImage

  it('maps the five choices to API bodies, three-level on', () => {
    expect(shareBody('none', true)).toEqual({ scope: 'none' })
    expect(shareBody('projectPartial', true, ['p1'])).toEqual({ scope: 'project', project_ids: ['p1'] })
    expect(shareBody('projectAll', true)).toEqual({ scope: 'domain' })
    expect(shareBody('domainPartial', true, [], ['d1'])).toEqual({ scope: 'domain', domain_ids: ['d1'] })
    expect(shareBody('domainAll', true)).toEqual({ scope: 'system' })
  })
  it('maps 项目共享-全部 to a system share when three-level is off', () => {
    expect(shareBody('projectAll', false)).toEqual({ scope: 'system' })
    expect(choiceOf(img('system'), false)).toBe('projectAll')
  })
  it('labels the current share per mode', () => {
    expect(choiceOf(img('none'), true)).toBe('none')
    expect(choiceOf(img('project'), true)).toBe('projectPartial')
    expect(choiceOf(img('domain'), true)).toBe('projectAll')
    expect(choiceOf(img('domain', ['d']), true)).toBe('domainPartial')
    expect(choiceOf(img('system'), true)).toBe('domainAll')
  })
  it('reads the dialog: 全部 means all', () => {
    expect(choiceFromForm('project', [ALL])).toBe('projectAll')
    expect(choiceFromForm('project', ['p'])).toBe('projectPartial')
    expect(choiceFromForm('domain', [ALL])).toBe('domainAll')
    expect(choiceFromForm('domain', [])).toBe('none')
  })
  it('knows which shares need a sysadmin', () => {
    expect(shareLevel({ scope: 'system' })).toBe('system')
    expect(shareLevel({ scope: 'domain', domain_ids: ['x'] })).toBe('system')
    expect(shareLevel({ scope: 'domain' })).toBe('domain')
  })
})

describe('permissions', () => {
  const who = (roles: WhoAmI['roles'], project = 'p1'): WhoAmI => ({
    user: { id: 'u', name: 'u', domain_id: 'd1' },
    project: { id: project, name: project, domain_id: 'd1' },
    roles,
    highest_view: 'project',
    views: ['project'],
  })
  const image = (over: Partial<HostImage> = {}) =>
    ({ domain_id: 'd1', project_id: 'p1', protected: false, share_scope: 'none', shared_domain_ids: [], status: 'active', ...over }) as HostImage
  const member = who([{ role: 'member', project_id: 'p1', domain_id: null }])
  const viewer = who([{ role: 'viewer', project_id: 'p1', domain_id: null }])
  const domadmin = who([{ role: 'domainadmin', domain_id: 'd1', project_id: null }])
  const sysadmin = who([{ role: 'sysadmin', domain_id: null, project_id: null }])

  it('members write their project, viewers never', () => {
    expect(canWrite(member, image())).toBe(true)
    expect(canWrite(member, image({ project_id: 'p2' }))).toBe(false)
    expect(checkEdit(viewer, image()).ok).toBe(false)
  })
  it('protected images cannot be deleted, and say why', () => {
    expect(checkDelete(member, image({ protected: true }))).toEqual({ ok: false, reason: 'hostImage.tip.protectedCannotDelete', params: undefined })
    expect(checkDelete(member, image()).ok).toBe(true)
  })
  it('only unshared images change project, by admins', () => {
    expect(checkChangeProject(member, image()).reason).toBe('hostImage.tip.needAdmin')
    expect(checkChangeProject(domadmin, image({ share_scope: 'project' })).reason).toBe('hostImage.tip.sharedCannotMove')
    expect(checkChangeProject(domadmin, image()).ok).toBe(true)
  })
  it('shares only in the admin views, above one’s level never', () => {
    expect(checkShare(sysadmin, 'project', image()).reason).toBe('hostImage.tip.shareOnlyAdminViews')
    expect(checkShare(domadmin, 'domain', image()).ok).toBe(true)
    expect(checkShare(domadmin, 'domain', image({ share_scope: 'system' })).reason).toBe('errors.share_forbidden')
    expect(checkShare(sysadmin, 'system', image({ share_scope: 'system' })).ok).toBe(true)
  })
})

describe('static network shape', () => {
  it('accepts CIDR addresses of both families and refuses the rest', () => {
    for (const ok of ['192.0.2.10/24', '10.0.0.1/32', '2001:db8::10/64', '::ffff:192.0.2.1/96', '2001:db8:0:0:0:0:0:1/128'])
      expect(isCidr(ok), ok).toBe(true)
    for (const bad of ['192.0.2.10', '192.0.2.300/24', '192.0.2.10/33', '2001:db8::10/129', '2001:db8::1::2/64', 'gw/24', '192.0.2.10/', '1.2.3/8', ''])
      expect(isCidr(bad), bad).toBe(false)
  })
  it('checks the gateway and at most three DNS servers', () => {
    const form = { address: '192.0.2.10/24', gateway: '', dns: '' }
    expect(networkProblem(form)).toBeNull()
    expect(networkProblem({ ...form, address: '192.0.2.10' })).toBe('servers.createDialog.badAddress')
    expect(networkProblem({ ...form, gateway: '192.0.2.1/24' })).toBe('servers.createDialog.badGateway')
    expect(networkProblem({ ...form, dns: '192.0.2.53, 2001:db8::53' })).toBeNull()
    expect(networkProblem({ ...form, dns: '1.1.1.1 8.8.8.8 9.9.9.9 8.8.4.4' })).toBe('servers.createDialog.badDns')
    expect(networkProblem({ ...form, dns: 'dns.example' })).toBe('servers.createDialog.badDns')
    expect(splitDns(' 192.0.2.53,192.0.2.54 ，192.0.2.55 ')).toEqual(['192.0.2.53', '192.0.2.54', '192.0.2.55'])
    expect(networkBody({ address: ' 192.0.2.10/24 ', gateway: '192.0.2.1', dns: '192.0.2.53' })).toEqual({ address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53'] })
    expect(networkBody(form)).toEqual({ address: '192.0.2.10/24' })
  })
})

describe('Retry-After', () => {
  it('reads seconds or an HTTP date', () => {
    expect(parseRetryAfter('42')).toBe(42)
    expect(parseRetryAfter(null)).toBeNull()
    expect(parseRetryAfter('soon')).toBeNull()
    const now = Date.parse('2026-11-27T10:00:00Z')
    expect(parseRetryAfter('Fri, 27 Nov 2026 10:00:30 GMT', now)).toBe(30)
  })
})
