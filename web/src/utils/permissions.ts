// What the signed-in user may do, computed from whoami's roles the way the server decides
// (domain/permissions): the console disables what would be refused and says why.
import type { HostImage, Server, View, WhoAmI } from '@/api'
import { shareLevel } from './share'

export interface Check {
  ok: boolean
  /** i18n key of the reason when not ok */
  reason?: string
  params?: Record<string, unknown>
}

const OK: Check = { ok: true }
const no = (reason: string, params?: Record<string, unknown>): Check => ({ ok: false, reason, params })

export function isSysadmin(who: WhoAmI | null): boolean {
  return !!who?.roles.some((r) => r.role === 'sysadmin')
}

export function adminDomainIds(who: WhoAmI | null): string[] {
  return (who?.roles || []).filter((r) => r.role === 'domainadmin' && r.domain_id).map((r) => r.domain_id as string)
}

export function isDomainAdmin(who: WhoAmI | null, domainId: string | null | undefined): boolean {
  return isSysadmin(who) || (!!domainId && adminDomainIds(who).includes(domainId))
}

/** The member/viewer role on the token's current project. */
export function projectRole(who: WhoAmI | null): 'member' | 'viewer' | null {
  const pid = who?.project?.id
  if (!pid) return null
  const roles = who!.roles.filter((r) => r.project_id === pid).map((r) => r.role)
  if (roles.includes('member')) return 'member'
  if (roles.includes('viewer')) return 'viewer'
  return null
}

type Owned = Pick<HostImage, 'domain_id' | 'project_id'>

/** Edit, protect, delete, save, convert: admins of the owner's domain, members of the owner project. */
export function canWrite(who: WhoAmI | null, obj: Owned): boolean {
  if (isDomainAdmin(who, obj.domain_id)) return true
  return obj.project_id === who?.project?.id && projectRole(who) === 'member'
}

const BUSY = new Set(['saving', 'deleting', 'queued'])

function busy(img: HostImage): Check | null {
  return BUSY.has(img.status) ? no('hostImage.tip.busy', { status: img.status }) : null
}

export function checkEdit(who: WhoAmI | null, img: HostImage): Check {
  if (!canWrite(who, img)) return no('hostImage.tip.noPermission')
  return img.status === 'deleting' ? no('hostImage.tip.busy', { status: img.status }) : OK
}

export function checkProtection(who: WhoAmI | null, img: HostImage): Check {
  return checkEdit(who, img)
}

export function checkDelete(who: WhoAmI | null, img: HostImage): Check {
  if (!canWrite(who, img)) return no('hostImage.tip.noPermission')
  if (img.protected) return no('hostImage.tip.protectedCannotDelete')
  return busy(img) || OK
}

export function checkShare(who: WhoAmI | null, view: View, img: HostImage): Check {
  if (view === 'project') return no('hostImage.tip.shareOnlyAdminViews')
  if (!isDomainAdmin(who, img.domain_id)) return no('hostImage.tip.needAdmin')
  if (!isSysadmin(who) && shareLevel({ scope: img.share_scope, domain_ids: img.shared_domain_ids }) === 'system')
    return no('errors.share_forbidden')
  return img.status === 'deleting' ? no('hostImage.tip.busy', { status: img.status }) : OK
}

export function checkChangeProject(who: WhoAmI | null, img: HostImage): Check {
  if (!isDomainAdmin(who, img.domain_id)) return no('hostImage.tip.needAdmin')
  if (img.share_scope !== 'none') return no('hostImage.tip.sharedCannotMove')
  return busy(img) || OK
}

/** A toolbar (batch) action is possible when at least one selected image allows it. */
export function checkAny(items: HostImage[], check: (img: HostImage) => Check): Check {
  if (!items.length) return no('hostImage.tip.selectFirst')
  const results = items.map(check)
  return results.some((r) => r.ok) ? OK : results[0]
}

export function checkSaveServer(who: WhoAmI | null, server: Server): Check {
  if (!canWrite(who, server)) return no('servers.tip.noPermission')
  if (server.status !== 'ready') return no('servers.tip.mustStop')
  return OK
}

export function viewsOf(who: WhoAmI | null): View[] {
  return ((who?.views as View[] | undefined) || ['project']).slice()
}
