import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { i18n, setLang, errorText } from '@/i18n'
import { installAntd } from '@/antd'
import { ApiError } from '@/api/client'
import { session } from '@/stores/session'
import type { HostImage } from '@/api'

const share = vi.fn()
vi.mock('@/api', () => ({
  api: {
    share: (...args: unknown[]) => share(...args),
    batch: vi.fn(),
    projects: vi.fn(async () => ({ items: [{ id: 'p2', name: 'ops', domain_id: 'd1' }] })),
    domains: vi.fn(async () => ({ items: [{ id: 'd1', name: 'Default' }, { id: 'd2', name: 'east' }] })),
  },
}))

import StatusTag from '@/components/common/StatusTag.vue'
import BatchResults from '@/components/hostimage/BatchResults.vue'
import ShareDialog from '@/components/hostimage/ShareDialog.vue'

const plugins = { plugins: [i18n, { install: installAntd }] }

function image(over: Partial<HostImage> = {}): HostImage {
  return {
    id: 'h1',
    name: 'centos7-web',
    domain_id: 'd1',
    project_id: 'p1',
    share_scope: 'none',
    shared_project_ids: [],
    shared_domain_ids: [],
    shared_projects: [],
    shared_domains: [],
    protected: true,
    status: 'active',
    ...over,
  } as HostImage
}

beforeEach(() => {
  setLang('zh-CN')
  share.mockReset()
  session.who = {
    user: { id: 'u', name: 'admin', domain_id: 'd1' },
    project: { id: 'p0', name: 'system', domain_id: 'd1' },
    roles: [{ role: 'sysadmin', domain_id: null, project_id: null }],
    highest_view: 'system',
    views: ['project', 'domain', 'system'],
  }
  session.view = 'system'
  session.settings = { three_level_permissions: true, target_formats: ['qcow2'] }
})

describe('StatusTag', () => {
  it('shows the status in the user language, spinning while saving', () => {
    const w = mount(StatusTag, { props: { status: 'saving' }, global: plugins })
    expect(w.text()).toContain('保存中')
    expect(w.find('.anticon-loading').exists()).toBe(true)
    setLang('en')
    const active = mount(StatusTag, { props: { status: 'active' }, global: plugins })
    expect(active.text()).toContain('Active')
    expect(active.find('.anticon-loading').exists()).toBe(false)
  })
})

describe('BatchResults', () => {
  it('summarises and translates per-item errors', () => {
    const w = mount(BatchResults, {
      props: {
        results: [
          { id: 'a', name: 'one', ok: true },
          { id: 'b', name: 'two', ok: false, error: { code: 'protected', detail: 'Deletion protection is enabled' } },
        ],
      },
      global: plugins,
    })
    expect(w.text()).toContain('成功 1 项，失败 1 项')
    expect(w.text()).toContain('已启用删除保护，请先禁用删除保护')
  })
})

describe('ShareDialog', () => {
  async function openWith(img: HostImage) {
    const w = mount(ShareDialog, { props: { open: true, items: [img], batch: false }, global: plugins, attachTo: document.body })
    await flushPromises()
    return w
  }
  const okButton = () => [...document.body.querySelectorAll<HTMLButtonElement>('.dlg-share .ant-btn-primary')].pop()!

  it('starts from the current share (域共享-部分) and sends its body', async () => {
    share.mockResolvedValue(image())
    const w = await openWith(image({ share_scope: 'domain', shared_domain_ids: ['d2'] }))
    expect(document.body.querySelector('[data-testid=share-preview]')!.textContent).toContain('域共享-部分')
    okButton().click()
    await flushPromises()
    expect(share).toHaveBeenCalledWith('h1', { scope: 'domain', domain_ids: ['d2'] })
    w.unmount()
  })

  it('three-level off: a system share is 项目共享-全部 and 域共享 is disabled', async () => {
    session.settings = { three_level_permissions: false, target_formats: ['qcow2'] }
    share.mockResolvedValue(image())
    const w = await openWith(image({ share_scope: 'system' }))
    expect(document.body.querySelector('[data-testid=share-preview]')!.textContent).toContain('项目共享-全部')
    const domainRadio = document.body.querySelector<HTMLInputElement>('[data-testid=share-mode-domain] input')!
    expect(domainRadio.disabled).toBe(true)
    okButton().click()
    await flushPromises()
    expect(share).toHaveBeenCalledWith('h1', { scope: 'system' })
    w.unmount()
  })
})

describe('errorText', () => {
  it('maps known codes and falls back to the server detail', () => {
    setLang('zh-CN')
    expect(errorText(new ApiError(409, { code: 'shared', detail: 'x' }))).toContain('仅未共享的镜像可以更改项目')
    expect(errorText(new ApiError(400, { code: 'something_new', detail: 'Server says no.' }))).toBe('Server says no.')
    setLang('en')
    expect(errorText(new ApiError(401, { code: 'bad_credentials' }))).toBe('Wrong user name or password')
  })
})
