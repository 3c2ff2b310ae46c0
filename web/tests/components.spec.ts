import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { i18n, setLang, errorText } from '@/i18n'
import { installAntd } from '@/antd'
import { ApiError } from '@/api/client'
import { session } from '@/stores/session'
import type { HostImage } from '@/api'

const share = vi.fn()
const tasks = vi.fn()
vi.mock('@/api', () => ({
  api: {
    share: (...args: unknown[]) => share(...args),
    tasks: (...args: unknown[]) => tasks(...args),
    batch: vi.fn(),
    projects: vi.fn(async () => ({ items: [{ id: 'p2', name: 'ops', domain_id: 'd1' }] })),
    domains: vi.fn(async () => ({ items: [{ id: 'd1', name: 'Default' }, { id: 'd2', name: 'east' }] })),
  },
}))

import StatusTag from '@/components/common/StatusTag.vue'
import BatchResults from '@/components/hostimage/BatchResults.vue'
import ShareDialog from '@/components/hostimage/ShareDialog.vue'
import TasksTab from '@/components/detail/TasksTab.vue'

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
  tasks.mockReset()
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

  it('writes the status reason under the tag when asked, whole in its title', () => {
    const reason = 'storage unreachable: connection refused'
    const w = mount(StatusTag, { props: { status: 'deleting', reason, showReason: true }, global: plugins })
    const line = w.find('[data-testid=status-reason]')
    expect(line.text()).toBe(reason)
    expect(line.attributes('title')).toBe(reason)
    expect(mount(StatusTag, { props: { status: 'killed', reason }, global: plugins }).find('[data-testid=status-reason]').exists()).toBe(false)
    expect(mount(StatusTag, { props: { status: 'active', showReason: true }, global: plugins }).find('[data-testid=status-reason]').exists()).toBe(false)
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

describe('TasksTab', () => {
  const task = (id: string, kind: string, status: string, progress: number) => ({
    id,
    kind,
    status,
    progress,
    target_type: 'host_image',
    target_id: 'h1',
    error: status === 'failed' ? 'qemu-img failed' : null,
    attempts: 1,
    created_at: '2026-11-20T08:00:00Z',
    started_at: '2026-11-20T08:00:01Z',
    finished_at: status === 'succeeded' || status === 'failed' ? '2026-11-20T08:01:00Z' : null,
  })

  it("asks the server for the object's tasks, whoever started them", async () => {
    tasks.mockResolvedValue({
      items: [task('t2', 'convert', 'failed', 40), task('t1', 'save_host_image', 'succeeded', 100)],
      total: 2,
      limit: 100,
      offset: 0,
    })
    const w = mount(TasksTab, { props: { targetId: 'h1' }, global: plugins })
    await flushPromises()
    expect(tasks).toHaveBeenCalledWith({ target_id: 'h1', limit: 100 })
    const rows = w.findAll('[data-testid=tasks-table] tbody tr.ant-table-row')
    expect(rows.map((r) => r.find('td').text())).toEqual(['格式转换', '保存主机镜像'])
    expect(rows[0].text()).toContain('失败')
    expect(rows[0].text()).toContain('qemu-img failed')
    expect(w.find('[data-testid=tasks-more]').exists()).toBe(false)
    w.unmount()
  })

  it('says when only the newest tasks are shown, and shows a load error', async () => {
    tasks.mockResolvedValueOnce({ items: [task('t9', 'convert', 'succeeded', 100)], total: 130, limit: 100, offset: 0 })
    const w = mount(TasksTab, { props: { targetId: 'h1' }, global: plugins })
    await flushPromises()
    expect(w.find('[data-testid=tasks-more]').text()).toBe('显示最新的 1 个任务（共 130 个）')
    tasks.mockRejectedValueOnce(new ApiError(403, { status: 403, code: 'forbidden', detail: 'no' }))
    await w.find('[data-testid=tasks-refresh]').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid=tasks-error]').exists()).toBe(true)
    w.unmount()
  })
})
