import type { RouteRecordRaw } from 'vue-router'
import type { Permission } from '@/api'
import type { MenuMeta } from './meta'
import { featureRoutes } from './routes'

export interface MenuItem extends MenuMeta {
  path: string
}

/** allowed tells whether a user with `can` may open a route with this meta. */
export function allowed(meta: RouteRecordRaw['meta'], can: (p: Permission) => boolean): boolean {
  return !meta?.requires || can(meta.requires)
}

/** menuFor lists the menu entries of the routes the user may open, in menu order. */
export function menuFor(can: (p: Permission) => boolean, routes: RouteRecordRaw[] = featureRoutes): MenuItem[] {
  return routes
    .filter((r) => r.meta?.menu && allowed(r.meta, can) && (!r.meta.menu.for || can(r.meta.menu.for)))
    .map((r) => ({ ...r.meta!.menu!, path: r.path }))
    .sort((a, b) => a.order - b.order)
}

/** homePath is where a user lands after logging in without a redirect: the first page of their menu. */
export function homePath(can: (p: Permission) => boolean, routes: RouteRecordRaw[] = featureRoutes): string {
  return menuFor(can, routes)[0]?.path ?? '/'
}
