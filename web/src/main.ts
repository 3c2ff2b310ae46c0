import { createApp } from 'vue'
import 'ant-design-vue/dist/reset.css'
import './styles.css'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'
import { installAntd } from './antd'
import { setUnauthorizedHandler } from './api/client'
import { clearSession } from './stores/session'

setUnauthorizedHandler(() => {
  clearSession()
  if (router.currentRoute.value.name !== 'login')
    router.replace({ name: 'login', query: { redirect: router.currentRoute.value.fullPath } })
})

const app = createApp(App)
installAntd(app)
app.use(i18n)
app.use(router)
app.mount('#app')
