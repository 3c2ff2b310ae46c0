// Compute hosts in the console: the 宿主机 page, the host column, filter and marks of the VM
// list, start/stop as tasks, and the host choice of 新建虚拟机.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory, createRouter } from 'vue-router'
import { Modal } from 'ant-design-vue'
import { i18n, setLang } from '@/i18n'
import { installAntd } from '@/antd'
import { ApiError } from '@/api/client'
import { session } from '@/stores/session'
import type { Host, Server, Task } from '@/api'

const api = vi.hoisted(() => ({
  hosts: vi.fn(),
  servers: vi.fn(),
  task: vi.fn(),
  tasks: vi.fn(),
  stopServer: vi.fn(),
  startServer: vi.fn(),
  deleteServer: vi.fn(),
  createServer: vi.fn(),
  deleteHost: vi.fn(),
  syncHost: vi.fn(),
  updateHost: vi.fn(),
  addHost: vi.fn(),
  projects: vi.fn(),
  hostImage: vi.fn(),
  images: vi.fn(),
  hostImages: vi.fn(),
}))
vi.mock('@/api', () => ({ api }))

import StatusTag from '@/components/common/StatusTag.vue'
import ServerList from '@/pages/ServerList.vue'
import HostsPage from '@/pages/admin/HostsPage.vue'
import HostDialog from '@/components/server/HostDialog.vue'
import CreateServerDialog from '@/components/server/CreateServerDialog.vue'
import { powerTasks } from '@/components/server/powerTasks'

const Empty = { template: '<div />' }

function makeRouter() {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/servers', name: 'servers', component: Empty },
      { path: '/host-images/:id', name: 'host-image', component: Empty },
      { path: '/system/hosts', name: 'hosts', component: Empty },
    ],
  })
}

async function mountWithRouter<T>(component: T, props: Record<string, unknown> = {}, path = '/servers') {
  const router = makeRouter()
  await router.push(path)
  await router.isReady()
  const w = mount(component as never, { props: props as never, global: { plugins: [i18n, { install: installAntd }, router] }, attachTo: document.body })
  await flushPromises()
  return { w, router }
}

const plugins = { plugins: [i18n, { install: installAntd }] }

function host(over: Partial<Host> = {}): Host {
  return {
    id: 'h1',
    name: 'kvm-01',
    driver: 'libvirt',
    uri: 'qemu+ssh://root@kvm-01/system',
    domain_id: 'd1',
    project_id: 'p1',
    storage_pool: 'default',
    network: null,
    status: 'connected',
    status_reason: null,
    versions: { libvirt: '9.0.0', hypervisor: 'QEMU 7.2.0' },
    servers: 2,
    synced_at: '2026-11-20T08:00:00Z',
    created_at: '2026-11-20T07:00:00Z',
    updated_at: '2026-11-20T07:00:00Z',
    ...over,
  }
}

const BUILTIN = host({ id: 'builtin', name: 'builtin', driver: 'builtin', uri: null, project_id: null, storage_pool: null, versions: {}, servers: 1, synced_at: null })

function server(over: Partial<Server> = {}): Server {
  return {
    id: 's1',
    name: 'web-01',
    host_id: 'h1',
    external_id: '0d8e…',
    created_here: true,
    status: 'ready',
    status_reason: null,
    domain_id: 'd1',
    project_id: 'p1',
    os_type: 'Linux',
    hostname: null,
    login_user: null,
    disk_driver: 'scsi',
    net_driver: 'virtio',
    host_image_id: null,
    disks: [{ index: 0, target: 'sda', size: 10 * 1024 ** 3, format: 'qcow2', pool: 'default', volume: 'hi-s1-0', source_image_id: null }],
    created_at: '2026-11-20T08:00:00Z',
    updated_at: '2026-11-20T08:00:00Z',
    ...over,
  } as Server
}

function task(status: string, over: Partial<Task> = {}): Task {
  return { id: 't1', kind: 'power_server', target_type: 'server', target_id: 's1', status, progress: 0, error: null, attempts: 1, created_at: '', started_at: null, finished_at: null, ...over }
}

const row = (name: string) => [...document.body.querySelectorAll<HTMLElement>('[data-testid=servers-table] tr.ant-table-row')].find((r) => r.querySelector(`[data-name='${name}']`))!
const hostRow = (name: string) => [...document.body.querySelectorAll<HTMLElement>('[data-testid=hosts-table] tr.ant-table-row')].find((r) => r.querySelector(`[data-name='${name}']`))!

beforeEach(() => {
  setLang('zh-CN')
  for (const fn of Object.values(api)) fn.mockReset()
  powerTasks.clear()
  Modal.destroyAll()
  session.who = {
    user: { id: 'u', name: 'admin', domain_id: 'd1' },
    project: { id: 'p0', name: 'system', domain_id: 'd1' },
    roles: [{ role: 'sysadmin', domain_id: null, project_id: null }],
    highest_view: 'system',
    views: ['project', 'domain', 'system'],
  }
  session.view = 'system'
  api.hosts.mockResolvedValue({ items: [BUILTIN, host(), host({ id: 'h2', name: 'kvm-02', status: 'unreachable', status_reason: 'Connection refused', versions: {} })], total: 3, limit: 1000, offset: 0 })
  api.projects.mockResolvedValue({ items: [{ id: 'p1', name: 'dev', domain_id: 'd1', domain_name: 'Default', description: '', created_at: '' }] })
  api.images.mockResolvedValue({ items: [], total: 0, limit: 200, offset: 0 })
  api.hostImages.mockResolvedValue({ items: [], total: 0, limit: 200, offset: 0 })
  api.tasks.mockResolvedValue({ items: [], total: 0, limit: 1, offset: 0 })
})

describe('StatusTag: hosts and VMs on hosts', () => {
  it('names the new statuses in both languages', () => {
    const text = (status: string) => mount(StatusTag, { props: { status }, global: plugins }).text()
    expect([text('missing'), text('connected'), text('unreachable'), text('unknown'), text('stopping')]).toEqual(['缺失', '已连接', '无法连接', '未知', '关机中'])
    expect(mount(StatusTag, { props: { status: 'stopping' }, global: plugins }).find('.anticon-loading').exists()).toBe(true)
    setLang('en')
    expect([text('missing'), text('connected'), text('unreachable'), text('unknown'), text('starting')]).toEqual(['Missing', 'Connected', 'Unreachable', 'Unknown', 'Starting'])
  })
})

describe('ServerList on hosts', () => {
  it('names the host, marks a VM found on a host and says why it cannot be deleted', async () => {
    api.servers.mockResolvedValue({
      items: [
        server(),
        server({ id: 's2', name: 'found', created_here: false, status: 'running' }),
        server({ id: 's3', name: 'gone', created_here: false, status: 'missing', status_reason: 'The domain is no longer defined on host kvm-01.' }),
        server({ id: 's4', name: 'local', host_id: 'builtin', external_id: null, disks: [{ index: 0, target: null, size: 1024 ** 3, format: 'qcow2', pool: null, volume: null, source_image_id: null }] }),
      ],
      total: 4,
      limit: 20,
      offset: 0,
    })
    const { w } = await mountWithRouter(ServerList)
    expect(row('web-01').querySelector('[data-testid=server-host]')!.textContent).toBe('kvm-01')
    expect(row('web-01').querySelector('[data-testid=server-found]')).toBeNull()
    expect(row('web-01').querySelector('[data-testid=server-disks]')!.textContent).toContain('sda 10 GiB')
    expect(row('local').querySelector('[data-testid=server-host]')!.textContent).toBe('内置')
    const found = row('found')
    expect(found.querySelector('[data-testid=server-found]')!.textContent).toBe('纳管')
    const del = found.querySelector<HTMLButtonElement>('[data-testid=server-delete]')!
    expect(del.disabled).toBe(true)
    expect(del.dataset.disabledReason).toContain('取消定义（undefine）')
    // a missing VM: 缺失 with the reason in the user's language, and it may be deleted
    const gone = row('gone')
    expect(gone.querySelector('.status-tag')!.textContent).toContain('缺失')
    expect(gone.querySelector('[data-testid=status-reason]')!.textContent).toBe('宿主机上已没有它的域')
    expect(gone.querySelector<HTMLButtonElement>('[data-testid=server-delete]')!.disabled).toBe(false)
    expect(gone.querySelector<HTMLButtonElement>('[data-testid=server-save]')!.dataset.disabledReason).toBe('虚拟机的域已不在宿主机上')
    expect(gone.querySelector<HTMLButtonElement>('[data-testid=server-power]')!.disabled).toBe(true)
    w.unmount()
  })

  it('shows 关机中 while the stop task of a libvirt VM runs, then reloads', async () => {
    api.servers.mockResolvedValue({ items: [server({ status: 'running' })], total: 1, limit: 20, offset: 0 })
    api.stopServer.mockResolvedValue({ ...server({ status: 'running' }), task_id: 't1' })
    api.task.mockResolvedValueOnce(task('running'))
    const { w } = await mountWithRouter(ServerList)
    row('web-01').querySelector<HTMLButtonElement>('[data-testid=server-power]')!.click()
    await flushPromises()
    expect(api.stopServer).toHaveBeenCalledWith('s1')
    expect(row('web-01').querySelector('.status-tag')!.textContent).toContain('关机中')
    const power = row('web-01').querySelector<HTMLButtonElement>('[data-testid=server-power]')!
    expect(power.disabled).toBe(true)
    expect(power.dataset.disabledReason).toContain('正在关机')
    // the task ends: the list is read again and shows the VM stopped
    api.task.mockResolvedValue(task('succeeded', { progress: 100 }))
    api.servers.mockResolvedValue({ items: [server({ status: 'ready' })], total: 1, limit: 20, offset: 0 })
    await new Promise((r) => setTimeout(r, 1600))
    await flushPromises()
    expect(row('web-01').querySelector('.status-tag')!.textContent).toContain('已关机')
    expect(powerTasks.size).toBe(0)
    expect(document.body.textContent).toContain('虚拟机 web-01 已关机')
    w.unmount()
  })

  it('filters by host from the address and from the filter', async () => {
    api.servers.mockResolvedValue({ items: [server()], total: 1, limit: 20, offset: 0 })
    const { w, router } = await mountWithRouter(ServerList, {}, '/servers?host_id=h1')
    expect(api.servers.mock.calls[0][0]).toMatchObject({ host_id: 'h1', scope: 'system' })
    await router.push('/servers')
    await flushPromises()
    expect(api.servers.mock.calls.at(-1)![0].host_id).toBeUndefined()
    w.unmount()
  })

  it('explains a refused delete in a dialog', async () => {
    api.servers.mockResolvedValue({ items: [server()], total: 1, limit: 20, offset: 0 })
    api.deleteServer.mockRejectedValue(new ApiError(409, { code: 'not_created_here', detail: 'x' }))
    const { w } = await mountWithRouter(ServerList)
    row('web-01').querySelector<HTMLButtonElement>('[data-testid=server-delete]')!.click()
    await flushPromises()
    expect(document.body.textContent).toContain('将在宿主机“kvm-01”上取消定义它的域并删除它的磁盘卷')
    ;[...document.body.querySelectorAll<HTMLButtonElement>('.ant-modal-confirm .ant-btn-dangerous')].pop()!.click()
    await flushPromises()
    await new Promise((r) => setTimeout(r, 50))
    expect(document.body.textContent).toContain('无法删除虚拟机 web-01')
    expect(document.body.textContent).toContain('请在宿主机上取消定义（undefine）它的域，然后同步宿主机')
    w.unmount()
  })
})

describe('CreateServerDialog: the host', () => {
  it('offers reachable hosts, vCPUs and memory for libvirt, and sends them', async () => {
    api.createServer.mockResolvedValue({ task_id: 't9', server: server() })
    api.task.mockResolvedValue(task('running', { kind: 'create_server' }))
    const w = mount(CreateServerDialog, { props: { open: false, hostId: 'h1' }, global: plugins, attachTo: document.body })
    await w.setProps({ open: true })
    await flushPromises()
    const dlg = document.body.querySelector('.dlg-create-server')!
    // the list was filtered by kvm-01: it is chosen, with its size fields
    expect(dlg.querySelector('[data-testid=create-host]')!.textContent).toContain('kvm-01')
    expect(dlg.querySelector('input[data-testid=create-vcpus], [data-testid=create-vcpus] input')).not.toBeNull()
    expect(dlg.textContent).toContain('磁盘卷建在存储池 default 中，网卡使用用户模式网络')
    // the unreachable host is offered disabled, with the reason
    dlg.querySelector<HTMLElement>('[data-testid=create-host] .ant-select-selector')!.dispatchEvent(new MouseEvent('mousedown', { bubbles: true }))
    await flushPromises()
    const options = [...document.body.querySelectorAll<HTMLElement>('.ant-select-item-option')]
    const down = options.find((o) => o.textContent!.includes('kvm-02'))!
    expect(down.className).toContain('ant-select-item-option-disabled')
    expect(down.textContent).toContain('宿主机无法连接：Connection refused')
    ;(dlg.querySelector('[data-testid=create-name]') as HTMLInputElement).value = 'vm-1'
    dlg.querySelector('[data-testid=create-name]')!.dispatchEvent(new Event('input'))
    dlg.querySelector<HTMLElement>('[data-testid=create-start]')!.click()
    await flushPromises()
    ;[...document.body.querySelectorAll<HTMLButtonElement>('.dlg-create-server .ant-btn-primary')].pop()!.click()
    await flushPromises()
    expect(api.createServer.mock.calls[0][0]).toMatchObject({ name: 'vm-1', host_id: 'h1', start: true, vcpus: 1, memory_mb: 1024 })
    w.unmount()
  })

  it('defaults to the built-in host, without vCPUs and memory', async () => {
    const w = mount(CreateServerDialog, { props: { open: false }, global: plugins, attachTo: document.body })
    await w.setProps({ open: true })
    await flushPromises()
    const dlg = document.body.querySelector('.dlg-create-server')!
    expect(dlg.querySelector('[data-testid=create-host]')!.textContent).toContain('内置')
    expect(dlg.querySelector('[data-testid=create-vcpus]')).toBeNull()
    w.unmount()
  })
})

describe('HostsPage', () => {
  it('lists hosts, the built-in one without actions, and the reason of an unreachable host', async () => {
    const { w } = await mountWithRouter(HostsPage, {}, '/system/hosts')
    expect(hostRow('builtin').textContent).toContain('内置')
    expect(hostRow('builtin').querySelector('[data-testid=host-edit]')).toBeNull()
    expect(hostRow('builtin').querySelector('[data-testid=host-builtin-actions]')).not.toBeNull()
    expect(hostRow('kvm-01').querySelector('[data-testid=host-libvirt]')!.textContent).toContain('libvirt 9.0.0')
    expect(hostRow('kvm-01').querySelector('[data-testid=host-hypervisor]')!.textContent).toBe('QEMU 7.2.0')
    expect(hostRow('kvm-02').textContent).toContain('无法连接')
    expect(hostRow('kvm-02').querySelector('[data-testid=status-reason]')!.textContent).toBe('Connection refused')
    w.unmount()
  })

  it('follows a sync until it ends', async () => {
    api.syncHost.mockResolvedValue({ task_id: 't5' })
    api.task.mockResolvedValueOnce(task('queued', { id: 't5', kind: 'sync_host' })).mockResolvedValueOnce(task('running', { id: 't5', kind: 'sync_host' }))
    const { w } = await mountWithRouter(HostsPage, {}, '/system/hosts')
    hostRow('kvm-01').querySelector<HTMLButtonElement>('[data-testid=host-sync]')!.click()
    await flushPromises()
    expect(hostRow('kvm-01').querySelector('[data-testid=host-syncing]')!.textContent).toContain('同步中')
    expect(hostRow('kvm-01').querySelector<HTMLButtonElement>('[data-testid=host-sync]')!.disabled).toBe(true)
    api.task.mockResolvedValue(task('succeeded', { id: 't5', kind: 'sync_host' }))
    await new Promise((r) => setTimeout(r, 1200))
    await flushPromises()
    await new Promise((r) => setTimeout(r, 100))
    expect(hostRow('kvm-01').querySelector('[data-testid=host-syncing]')).toBeNull()
    expect(document.body.textContent).toContain('kvm-01 同步完成')
    w.unmount()
  })

  it('names the VMs that keep a host from being deleted (409 host_in_use)', async () => {
    api.deleteHost.mockRejectedValue(new ApiError(409, { code: 'host_in_use', detail: "Server 'web-01' on this host was created by the service" }))
    api.servers.mockResolvedValue({ items: [server(), server({ id: 's2', name: 'found', created_here: false })], total: 2, limit: 100, offset: 0 })
    const { w } = await mountWithRouter(HostsPage, {}, '/system/hosts')
    hostRow('kvm-01').querySelector<HTMLButtonElement>('[data-testid=host-delete]')!.click()
    await flushPromises()
    expect(document.body.textContent).toContain('宿主机上的域和磁盘不受影响')
    document.body.querySelector<HTMLButtonElement>('.dlg-host-delete .ant-btn-dangerous')!.click()
    await flushPromises()
    await new Promise((r) => setTimeout(r, 50))
    const refused = document.body.querySelector('.dlg-host-refused')!.textContent!
    expect(refused).toContain('无法删除宿主机 kvm-01')
    expect(refused).toContain('请先删除（或等待）这些虚拟机：web-01')
    expect(refused).not.toContain('found')
    expect(api.servers).toHaveBeenCalledWith({ scope: 'system', host_id: 'h1', limit: 100 })
    w.unmount()
  })

  it('tells other users the page is for system administrators', async () => {
    session.who = { ...session.who!, roles: [{ role: 'member', domain_id: null, project_id: 'p1' }] }
    const { w } = await mountWithRouter(HostsPage, {}, '/system/hosts')
    expect(document.body.querySelector('[data-testid=hosts-forbidden]')).not.toBeNull()
    expect(api.hosts).not.toHaveBeenCalled()
    w.unmount()
  })
})

describe('HostDialog', () => {
  it('sends only what changed when editing; an emptied network is null', async () => {
    const h = host({ network: 'br0' })
    api.updateHost.mockResolvedValue(h)
    const w = mount(HostDialog, { props: { open: false, host: h }, global: plugins, attachTo: document.body })
    await w.setProps({ open: true })
    await flushPromises()
    const input = (id: string) => document.body.querySelector<HTMLInputElement>(`.dlg-host input[data-testid=${id}], .dlg-host [data-testid=${id}] input`)!
    input('host-network').value = ''
    input('host-network').dispatchEvent(new Event('input'))
    input('host-pool').value = 'images'
    input('host-pool').dispatchEvent(new Event('input'))
    await flushPromises()
    ;[...document.body.querySelectorAll<HTMLButtonElement>('.dlg-host .ant-btn-primary')].pop()!.click()
    await flushPromises()
    expect(api.updateHost).toHaveBeenCalledWith('h1', { storage_pool: 'images', network: null })
    w.unmount()
  })

  it('adds a libvirt host and asks for the fields it needs', async () => {
    api.addHost.mockResolvedValue(host())
    const w = mount(HostDialog, { props: { open: false, host: null }, global: plugins, attachTo: document.body })
    await w.setProps({ open: true })
    await flushPromises()
    const dlg = document.body.querySelector('.dlg-host')!
    expect(dlg.querySelector('[data-testid=host-uri-help]')!.textContent).toContain('qemu+ssh://user@host/system')
    ;[...document.body.querySelectorAll<HTMLButtonElement>('.dlg-host .ant-btn-primary')].pop()!.click()
    await flushPromises()
    expect(dlg.textContent).toContain('请填写名称')
    expect(api.addHost).not.toHaveBeenCalled()
    w.unmount()
  })
})
