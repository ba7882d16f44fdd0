import type { Router } from 'vue-router'
import { ApiError } from '@/api'
import { useSessionStore } from '@/stores/session'

/**
 * installGuard adds the app's one navigation guard:
 *  - public routes (meta.public) open for anyone;
 *  - without a session, /login?redirect=<where they wanted to go>;
 *  - with one, /api/v1/me is loaded (once), and a route whose meta.requires the user lacks
 *    goes to /forbidden?from=<path> (a shopper typing an operator URL);
 *  - if /me cannot be loaded: the session-expired page when the session ended, else the
 *    error page with the request id.
 */
export function installGuard(router: Router) {
  router.beforeEach(async (to) => {
    const session = useSessionStore()
    if (to.meta.public) {
      // Load /me where there is a session, so the layout and menu know the user; a
      // failure here must not block a public page.
      if (session.isLoggedIn) await session.ensureMe().catch(() => undefined)
      return true
    }
    if (!session.isLoggedIn) {
      return { name: session.expired ? 'session-expired' : 'login', query: { redirect: to.fullPath } }
    }
    try {
      await session.ensureMe()
    } catch (e) {
      if (!session.isLoggedIn) return { name: 'session-expired', query: { redirect: to.fullPath } }
      return errorLocation(e)
    }
    if (to.meta.requires && !session.can(to.meta.requires)) {
      return { name: 'forbidden', query: { from: to.fullPath } }
    }
    return true
  })
}

/** errorLocation is the error page's location for an error, carrying its code and request id. */
export function errorLocation(e: unknown) {
  const query: Record<string, string> = {}
  if (e instanceof ApiError) {
    query.code = String(e.code)
    if (e.requestId) query.requestId = e.requestId
  }
  return { name: 'error', query }
}
