import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { i18n, setLang, errorText } from '@/i18n'
import { installAntd } from '@/antd'
import { ApiError } from '@/api/client'
import { session } from '@/stores/session'
import type { HostImage } from '@/api'

const share = vi.fn()
const tasks = vi.fn()
const patchSettings = vi.fn()
vi.mock('@/api', () => ({
  api: {
    share: (...args: unknown[]) => share(...args),
    tasks: (...args: unknown[]) => tasks(...args),
    patchSettings: (...args: unknown[]) => patchSettings(...args),
    batch: vi.fn(),
    projects: vi.fn(async () => ({ items: [{ id: 'p2', name: 'ops', domain_id: 'd1' }] })),
    domains: vi.fn(async () => ({ items: [{ id: 'd1', name: 'Default' }, { id: 'd2', name: 'east' }] })),
  },
}))

import StatusTag from '@/components/common/StatusTag.vue'
import BatchResults from '@/components/hostimage/BatchResults.vue'
import ShareDialog from '@/components/hostimage/ShareDialog.vue'
import TasksTab from '@/components/detail/TasksTab.vue'
import SettingsPage from '@/pages/admin/SettingsPage.vue'

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
  patchSettings.mockReset()
  session.who = {
    user: { id: 'u', name: 'admin', domain_id: 'd1' },
    project: { id: 'p0', name: 'system', domain_id: 'd1' },
    roles: [{ role: 'sysadmin', domain_id: null, project_id: null }],
    highest_view: 'system',
    views: ['project', 'domain', 'system'],
  }
  session.view = 'system'
  session.settings = { three_level_permissions: true, target_formats: ['qcow2'], max_virtual_size_gb: 16384, max_upload_size_gb: 2048 }
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
    session.settings = { three_level_permissions: false, target_formats: ['qcow2'], max_virtual_size_gb: 16384, max_upload_size_gb: 2048 }
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

  const headers = (h: Record<string, string>) => ({ get: (name: string) => h[name] ?? null })

  it('says how long a throttled login waits, from Retry-After', () => {
    const err = new ApiError(429, { code: 'too_many_attempts', detail: 'Too many failed logins; try again in 37 s.' }, headers({ 'Retry-After': '37' }))
    expect(err.retryAfter).toBe(37)
    expect(errorText(err)).toBe('登录失败次数过多，请 37 秒后再试')
    expect(errorText(new ApiError(429, { code: 'too_many_attempts' }))).toBe('登录失败次数过多，请稍后再试')
    setLang('en')
    expect(errorText(err)).toBe('Too many failed sign-ins; try again in 37 seconds')
  })

  it('gives the request id of an internal error, from the body or else the header', () => {
    expect(errorText(new ApiError(500, { code: 'internal', request_id: 'req-42' }))).toBe('服务器内部错误。报告问题时请提供请求 ID：req-42')
    expect(errorText(new ApiError(500, { code: 'internal' }, headers({ 'X-Request-ID': 'hdr-7' })))).toContain('hdr-7')
  })

  it('names the limit an image is over, per status', () => {
    const GiB = 1024 ** 3
    expect(errorText(new ApiError(413, { code: 'too_large', limit: 2048 * GiB }))).toBe('文件超过上传大小上限（2 TiB）')
    expect(errorText(new ApiError(422, { code: 'too_large', limit: 16 * GiB, virtual_size: 2 ** 62 }))).toBe('镜像的虚拟容量 4096 PiB 超过上限（16 GiB）')
    expect(errorText(new ApiError(422, { code: 'too_large' }))).toBe('镜像超过大小上限')
  })

  it('translates the fault codes and keeps the detail of a refused network', () => {
    expect(errorText(new ApiError(503, { code: 'busy' }))).toBe('服务繁忙，请稍后重试')
    expect(errorText(new ApiError(503, { code: 'storage_unavailable' }))).toBe('镜像存储暂时不可用，请稍后重试')
    expect(errorText(new ApiError(507, { code: 'insufficient_storage' }))).toBe('存储空间不足，请释放空间后重试')
    expect(errorText(new ApiError(409, { code: 'conflict' }))).toBe('对象已被其他操作同时修改，请刷新后重试')
    const net = new ApiError(422, { code: 'invalid_network', detail: 'The gateway 10.0.0.1 must be another address inside 192.0.2.0/24.' })
    expect(errorText(net)).toBe('静态网络配置无效: The gateway 10.0.0.1 must be another address inside 192.0.2.0/24.')
    setLang('en')
    for (const code of ['busy', 'storage_unavailable', 'insufficient_storage', 'conflict', 'too_large', 'unsupported_network', 'invalid_network'])
      expect(errorText(new ApiError(400, { code }))).not.toBe('')
    expect(errorText(new ApiError(400, { code: 'unsupported_network', detail: 'x' }))).toBe('The image has no network config a static address can be written to')
  })
})

describe('SettingsPage: the size limits', () => {
  const input = (w: ReturnType<typeof mount>, key: string) => w.find(`input[data-testid=setting-${key}], [data-testid=setting-${key}] input`)
  const saveButton = (w: ReturnType<typeof mount>) => w.find('[data-testid=settings-save-limits]')

  it('shows the limits, refuses a number that is not above 0 and sends only what changed', async () => {
    const w = mount(SettingsPage, { global: plugins })
    expect((input(w, 'max_virtual_size_gb').element as HTMLInputElement).value).toBe('16384')
    expect(w.find('[data-testid=setting-max_upload_size_gb-bytes]').text()).toBe('即 2 TiB')
    expect(saveButton(w).attributes('disabled')).toBeDefined() // nothing changed yet
    await input(w, 'max_upload_size_gb').setValue('0')
    await flushPromises()
    expect(w.text()).toContain('请输入大于 0 的数字')
    expect(saveButton(w).attributes('disabled')).toBeDefined()
    await input(w, 'max_upload_size_gb').setValue('0.5')
    await flushPromises()
    expect(w.find('[data-testid=setting-max_upload_size_gb-bytes]').text()).toBe('即 512 MiB')
    patchSettings.mockResolvedValue({ ...session.settings, max_upload_size_gb: 0.5 })
    await saveButton(w).trigger('click')
    await flushPromises()
    expect(patchSettings).toHaveBeenCalledWith({ max_upload_size_gb: 0.5 })
    expect(session.settings!.max_upload_size_gb).toBe(0.5)
    w.unmount()
  })

  it("shows the server's 422 beside the field it names", async () => {
    const w = mount(SettingsPage, { global: plugins })
    await input(w, 'max_virtual_size_gb').setValue('2000000000')
    await flushPromises()
    patchSettings.mockRejectedValue(
      new ApiError(422, {
        code: 'validation_error',
        detail: 'max_virtual_size_gb: Input should be less than or equal to 1073741824',
        errors: [{ loc: ['body', 'max_virtual_size_gb'], msg: 'Input should be less than or equal to 1073741824', type: 'less_than_equal' }],
      }),
    )
    await saveButton(w).trigger('click')
    await flushPromises()
    expect(w.find('[data-testid=settings-limits-error]').text()).toContain('请求参数不正确: max_virtual_size_gb: Input should be less than or equal to 1073741824')
    expect(w.find('.ant-form-item-has-error').text()).toContain('Input should be less than or equal to 1073741824')
    expect(session.settings!.max_virtual_size_gb).toBe(16384)
    w.unmount()
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

  it('labels uploads and retries: a queued task with attempts and an error is waiting for its next run', async () => {
    const retrying = { ...task('t3', 'delete_host_image', 'queued', 0), attempts: 2, error: 'storage unreachable' }
    tasks.mockResolvedValue({ items: [retrying, task('t4', 'upload', 'failed', 10), task('t5', 'gc', 'succeeded', 100)], total: 3, limit: 100, offset: 0 })
    const w = mount(TasksTab, { props: { targetId: 'h1' }, global: plugins })
    await flushPromises()
    const rows = w.findAll('[data-testid=tasks-table] tbody tr.ant-table-row')
    expect(rows.map((r) => r.find('td').text())).toEqual(['删除主机镜像', '上传镜像', '存储垃圾回收'])
    expect(rows[0].find('.status-tag').text()).toBe('等待重试')
    expect(rows[0].find('[data-testid=task-note]').text()).toBe('第 2 次尝试失败，等待重试：storage unreachable')
    expect(rows[0].find('.task-note-retry').exists()).toBe(true)
    expect(rows[1].find('.task-note-error').text()).toBe('qemu-img failed')
    expect(rows[2].find('[data-testid=task-note]').exists()).toBe(false)
    w.unmount()
  })
})
