import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router'
import { restore, session } from './stores/session'

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
  {
    path: '/',
    component: () => import('./layouts/ConsoleLayout.vue'),
    children: [
      { path: '', redirect: { name: 'host-images' } },
      { path: 'host-images', name: 'host-images', component: () => import('./pages/HostImageList.vue'), meta: { menu: 'host-images' } },
      { path: 'host-images/:id', name: 'host-image', component: () => import('./pages/HostImageDetail.vue'), meta: { menu: 'host-images' } },
      { path: 'servers', name: 'servers', component: () => import('./pages/ServerList.vue'), meta: { menu: 'servers' } },
      { path: 'images', name: 'images', component: () => import('./pages/ImageList.vue'), meta: { menu: 'images' } },
      { path: 'system/domains', name: 'domains', component: () => import('./pages/admin/DomainsPage.vue'), meta: { menu: 'domains' } },
      { path: 'system/projects', name: 'projects', component: () => import('./pages/admin/ProjectsPage.vue'), meta: { menu: 'projects' } },
      { path: 'system/users', name: 'users', component: () => import('./pages/admin/UsersPage.vue'), meta: { menu: 'users' } },
      { path: 'system/hosts', name: 'hosts', component: () => import('./pages/admin/HostsPage.vue'), meta: { menu: 'hosts' } },
      { path: 'system/settings', name: 'settings', component: () => import('./pages/admin/SettingsPage.vue'), meta: { menu: 'settings' } },
    ],
  },
  { path: '/:rest(.*)*', redirect: '/' },
]

export const router = createRouter({ history: createWebHashHistory(), routes })

router.beforeEach(async (to) => {
  if (!session.ready) await restore()
  if (to.meta.public) return true
  if (!session.who) return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  return true
})
