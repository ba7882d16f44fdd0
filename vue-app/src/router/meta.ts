import type { Component } from 'vue'
import type { Permission } from '@/api'

/** A menu entry drawn from a route: shown only to users who may open the route. */
export interface MenuMeta {
  /** i18n key of the entry's label, e.g. 'nav.cart'. */
  label: string
  /** An icon component from @element-plus/icons-vue. */
  icon?: Component
  /** Sort position; lower first. Shopper pages use 10-19, operator pages 20-29, admin 30-39. */
  order: number
  /**
   * Show the entry only to users who also have this permission: a page others may open
   * too but that is not theirs to work from (the catalog, which staff can read, is the
   * shoppers' entry and first page, not the operators').
   */
  for?: Permission
}

declare module 'vue-router' {
  interface RouteMeta {
    /** The API operation (a permission from /api/v1/me) the user needs to open the route. */
    requires?: Permission
    /** Open without logging in (login, sign-up, error pages, a public catalog). */
    public?: boolean
    /** Show in the menu. */
    menu?: MenuMeta
    /** Render without the app layout (login, sign-up, session expired). */
    bare?: boolean
  }
}

export {}
