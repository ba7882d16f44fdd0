import { createRouter, createWebHistory, type RouteRecordRaw, type RouterHistory } from 'vue-router'
import './meta'
import AppLayout from '@/components/AppLayout.vue'
import { featureRoutes } from './routes'
import { installGuard, errorLocation } from './guard'

// The constant routes: pages every user can reach whatever their role. Login, sign-up and
// the session-expired page render alone; the rest inside the layout, with the feature
// routes (routes.ts) as its children.
export const constantRoutes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'), meta: { public: true, bare: true } },
  { path: '/signup', name: 'signup', component: () => import('@/views/SignupView.vue'), meta: { public: true, bare: true } },
  {
    path: '/session-expired',
    name: 'session-expired',
    component: () => import('@/views/SessionExpiredView.vue'),
    meta: { public: true, bare: true },
  },
]

export const layoutRoute: RouteRecordRaw = {
  path: '/',
  component: AppLayout,
  children: [
    ...featureRoutes,
    { path: '/forbidden', name: 'forbidden', component: () => import('@/views/ForbiddenView.vue'), meta: { public: true } },
    { path: '/error', name: 'error', component: () => import('@/views/ErrorView.vue'), meta: { public: true } },
    { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('@/views/NotFoundView.vue'), meta: { public: true } },
  ],
}

/** makeRouter builds the app's router (tests pass a memory history). */
export function makeRouter(history: RouterHistory = createWebHistory(import.meta.env.BASE_URL)) {
  const router = createRouter({
    history,
    routes: [...constantRoutes, layoutRoute],
    scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
  })
  installGuard(router)
  return router
}

export const router = makeRouter()

/** showError opens the error page for an error (its code and request id shown to quote). */
export function showError(e: unknown) {
  return router.push(errorLocation(e))
}
