// Share scopes: the five console choices, their labels per three-level mode and API bodies
// (SPEC F4).
import type { HostImage, ShareBody } from '@/api'

export type ShareChoice = 'none' | 'projectPartial' | 'projectAll' | 'domainPartial' | 'domainAll'

export const SHARE_CHOICES: ShareChoice[] = ['none', 'projectPartial', 'projectAll', 'domainPartial', 'domainAll']

/** Which of the five choices an image's current share is. */
export function choiceOf(
  img: Pick<HostImage, 'share_scope' | 'shared_domain_ids'>,
  threeLevel: boolean,
): ShareChoice {
  switch (img.share_scope) {
    case 'project':
      return 'projectPartial'
    case 'domain':
      return img.shared_domain_ids && img.shared_domain_ids.length ? 'domainPartial' : 'projectAll'
    case 'system':
      // Three-level off: "project share — all" is stored as a system share.
      return threeLevel ? 'domainAll' : 'projectAll'
    default:
      return 'none'
  }
}

/** The API body for a choice. */
export function shareBody(choice: ShareChoice, threeLevel: boolean, projectIds: string[] = [], domainIds: string[] = []): ShareBody {
  switch (choice) {
    case 'projectPartial':
      return { scope: 'project', project_ids: projectIds }
    case 'projectAll':
      return threeLevel ? { scope: 'domain' } : { scope: 'system' }
    case 'domainPartial':
      return { scope: 'domain', domain_ids: domainIds }
    case 'domainAll':
      return { scope: 'system' }
    default:
      return { scope: 'none' }
  }
}

/** The role level a share needs (to set it or to change away from it). */
export function shareLevel(body: { scope: string; domain_ids?: string[] | null }): 'domain' | 'system' {
  if (body.scope === 'system') return 'system'
  if (body.scope === 'domain' && body.domain_ids && body.domain_ids.length) return 'system'
  return 'domain'
}

/** The dialog's two-step model (共享范围 + targets with a 全部 entry) → one of the choices. */
export const ALL = '__all__'

export function choiceFromForm(mode: 'none' | 'project' | 'domain', targets: string[]): ShareChoice {
  if (mode === 'none') return 'none'
  if (mode === 'project') return targets.includes(ALL) ? 'projectAll' : targets.length ? 'projectPartial' : 'none'
  return targets.includes(ALL) ? 'domainAll' : targets.length ? 'domainPartial' : 'none'
}
