// Typed endpoints of the REST API. The shapes come from the OpenAPI document
// (`web/openapi.json` → `schema.d.ts`, regenerate with `npm run api:regen`).
import type { components } from './schema'
import { download, http, uploadFile, type Query } from './client'

export type Schemas = components['schemas']
export type HostImage = Schemas['HostImageOut']
export type HostImagePage = Schemas['HostImageList']
export type HostImagePatch = Schemas['HostImagePatch']
export type HostImageCreate = Schemas['HostImageCreate']
export type SubImage = Schemas['SubImageOut']
export type FormatCopy = Schemas['FormatCopyOut']
export type ShareBody = Schemas['ShareBody']
export type BatchBody = Schemas['BatchBody']
export type BatchAction = BatchBody['action']
export type BatchResult = Schemas['BatchResult']
export type LogEntry = Schemas['LogEntryOut']
export type LogPage = Schemas['LogPage']
export type Image = Schemas['ImageOut']
export type ImagePage = Schemas['ImageList']
export type ImageIn = Schemas['ImageIn']
export type Server = Schemas['ServerOut']
export type ServerPage = Schemas['ServerList']
export type ServerIn = Schemas['ServerIn']
export type NetworkIn = Schemas['NetworkIn']
export type ServerCreated = Schemas['ServerCreated']
export type ServerPower = Schemas['ServerPower']
export type ServerDisk = Schemas['ServerDiskOut']
export type Host = Schemas['HostOut']
export type HostIn = Schemas['HostIn']
export type HostPatch = Schemas['HostPatch']
export type SaveBody = Schemas['SaveBody']
export type SaveAccepted = Schemas['SaveAccepted']
export type Task = Schemas['TaskOut']
export type TaskPage = Schemas['TaskList']
export type WhoAmI = Schemas['WhoAmI']
export type TokenOut = Schemas['TokenOut']
export type RoleOut = Schemas['RoleOut']
export type Domain = Schemas['DomainOut']
export type Project = Schemas['ProjectOut']
export type User = Schemas['UserOut']
export type Assignment = Schemas['AssignmentOut']
export type AssignmentIn = Schemas['AssignmentIn']
export type SettingsOut = Schemas['SettingsOut']
export type View = 'project' | 'domain' | 'system'
export type OsType = Schemas['OsType']
export type DiskFormat = Schemas['DiskFormat']

export interface HostImageQuery extends Query {
  scope?: View
  limit?: number
  offset?: number
  name?: string
  status?: string
  project_id?: string
  domain_id?: string
  os_type?: string
  protected?: boolean
  share_scope?: string
  is_standard?: boolean
  order_by?: string
  order?: 'asc' | 'desc'
}

export interface LogQuery extends Query {
  limit?: number
  marker?: string
  since?: string
  until?: string
  action?: string
  success?: boolean
}

export const api = {
  login: (body: Schemas['LoginBody']) => http.post<TokenOut>('/auth/login', body),
  switchProject: (project_id: string) => http.post<TokenOut>('/auth/switch', { project_id }),
  whoami: () => http.get<WhoAmI>('/auth/whoami'),
  logout: () => http.post<void>('/auth/logout'),

  domains: () => http.get<{ items: Domain[] }>('/domains'),
  createDomain: (body: Schemas['DomainIn']) => http.post<Domain>('/domains', body),
  projects: (domain_id?: string) => http.get<{ items: Project[] }>('/projects', { domain_id }),
  createProject: (body: Schemas['ProjectIn']) => http.post<Project>('/projects', body),
  users: (domain_id?: string) => http.get<{ items: User[] }>('/users', { domain_id }),
  createUser: (body: Schemas['UserIn']) => http.post<User>('/users', body),
  assignments: (user_id?: string) => http.get<{ items: Assignment[] }>('/role-assignments', { user_id }),
  assignRole: (body: AssignmentIn) => http.post<Assignment>('/role-assignments', body),
  revokeRole: (id: string) => http.del<void>(`/role-assignments/${id}`),
  settings: () => http.get<SettingsOut>('/settings'),
  patchSettings: (body: Schemas['SettingsPatch']) => http.patch<SettingsOut>('/settings', body),

  hostImages: (query: HostImageQuery, signal?: AbortSignal) => http.get<HostImagePage>('/host-images', query, signal),
  hostImage: (id: string) => http.get<HostImage>(`/host-images/${id}`),
  composeHostImage: (body: HostImageCreate) => http.post<HostImage>('/host-images', body),
  updateHostImage: (id: string, body: HostImagePatch) => http.patch<HostImage>(`/host-images/${id}`, body),
  deleteHostImage: (id: string) => http.del<Schemas['DeleteAccepted']>(`/host-images/${id}`),
  share: (id: string, body: ShareBody) => http.post<HostImage>(`/host-images/${id}/share`, body),
  changeProject: (id: string, project_id: string) => http.post<HostImage>(`/host-images/${id}/change-project`, { project_id }),
  setProtection: (id: string, value: boolean) => http.post<HostImage>(`/host-images/${id}/protection`, { protected: value }),
  batch: (body: BatchBody) => http.post<{ results: BatchResult[] }>('/host-images/batch', body),
  subImages: (id: string) => http.get<{ items: SubImage[] }>(`/host-images/${id}/sub-images`),
  formats: (id: string) => http.get<{ items: FormatCopy[] }>(`/host-images/${id}/formats`),
  requestFormat: (id: string, format: string) => http.post<Schemas['ConvertAccepted']>(`/host-images/${id}/formats`, { format }),
  logs: (id: string, query: LogQuery) => http.get<LogPage>(`/host-images/${id}/logs`, query),
  logEntry: (id: number) => http.get<LogEntry>(`/logs/${id}`),
  exportLogs: (id: string, query: Query, fallbackName: string) => download(`/host-images/${id}/logs/export`, query, fallbackName),

  images: (query: Query) => http.get<ImagePage>('/images', query),
  image: (id: string) => http.get<Image>(`/images/${id}`),
  createImage: (body: ImageIn) => http.post<Image>('/images', body),
  updateImage: (id: string, body: Schemas['ImagePatch']) => http.patch<Image>(`/images/${id}`, body),
  uploadImage: (id: string, file: Blob, onProgress: (p: number) => void) => uploadFile(`/images/${id}/data`, file, onProgress),
  deleteImage: (id: string) => http.del<Schemas['ImageDeleteAccepted']>(`/images/${id}`),

  servers: (query: Query) => http.get<ServerPage>('/servers', query),
  server: (id: string) => http.get<Server>(`/servers/${id}`),
  createServer: (body: ServerIn) => http.post<ServerCreated>('/servers', body),
  deleteServer: (id: string) => http.del<Schemas['ServerDeleteAccepted']>(`/servers/${id}`),
  startServer: (id: string) => http.post<ServerPower>(`/servers/${id}/start`),
  stopServer: (id: string) => http.post<ServerPower>(`/servers/${id}/stop`),
  saveHostImage: (id: string, body: SaveBody) => http.post<SaveAccepted>(`/servers/${id}/save-host-image`, body),

  hosts: () => http.get<Schemas['HostList']>('/hosts', { limit: 1000 }),
  host: (id: string) => http.get<Host>(`/hosts/${id}`),
  addHost: (body: HostIn) => http.post<Host>('/hosts', body),
  updateHost: (id: string, body: HostPatch) => http.patch<Host>(`/hosts/${id}`, body),
  deleteHost: (id: string) => http.del<void>(`/hosts/${id}`),
  syncHost: (id: string) => http.post<Schemas['SyncAccepted']>(`/hosts/${id}/sync`),

  task: (id: string) => http.get<Task>(`/tasks/${id}`),
  tasks: (query: { target_id?: string; limit?: number; offset?: number }) => http.get<TaskPage>('/tasks', query),
}
