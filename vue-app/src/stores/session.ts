import { computed, ref } from 'vue'
import { defineStore } from 'pinia'
import { api, unwrap, tokens, sessionExpired, setTokens, clearTokens } from '@/api'
import type { Me, Permission } from '@/api'

// The session: who is logged in and what they may do. Tokens live in the API layer's
// holder (src/api/tokens.ts, which also explains where the refresh token is kept); this
// store adds the login/logout flows and /api/v1/me, whose permission list (API
// operationIds) drives the routes and the menu.
export const useSessionStore = defineStore('session', () => {
  const me = ref<Me | null>(null)

  const isLoggedIn = computed(() => tokens.value !== null)
  const username = computed(() => me.value?.username ?? tokens.value?.username ?? null)
  const role = computed(() => me.value?.role ?? tokens.value?.role ?? null)
  const permissions = computed(() => new Set<string>(me.value?.permissions ?? []))
  /** True after the server refused a refresh: the session ended, the user must log in again. */
  const expired = computed(() => sessionExpired.value)

  /** can tells whether the user's role may call the API operation `permission`. */
  function can(permission: Permission): boolean {
    return permissions.value.has(permission)
  }

  /** loadMe fetches /api/v1/me (role and permissions). */
  async function loadMe(): Promise<Me> {
    const m = await unwrap(api.GET('/api/v1/me'))
    me.value = m
    return m
  }

  let loadingMe: Promise<Me> | null = null

  /** ensureMe loads /me once per user (concurrent callers share the request); the router guard awaits it. */
  async function ensureMe(): Promise<Me | null> {
    if (!tokens.value) return null
    if (me.value && me.value.username === tokens.value.username) return me.value
    loadingMe ??= loadMe().finally(() => (loadingMe = null))
    return loadingMe
  }

  /** login starts a session and loads its permissions; throws ApiError (40100 on bad credentials). */
  async function login(name: string, password: string): Promise<Me> {
    const s = await unwrap(api.POST('/auth/login', { body: { username: name, password } }))
    me.value = null
    setTokens(s)
    return loadMe()
  }

  /** register creates a shopper account and logs it in; throws ApiError (42200 invalid, 40901 taken). */
  async function register(name: string, password: string): Promise<Me> {
    await unwrap(api.POST('/auth/register', { body: { username: name, password } }))
    return login(name, password)
  }

  /**
   * logout ends the session here at once (the live socket closes as it sees the tokens go)
   * and then asks the server to revoke the refresh token; a failure of that is ignored,
   * the tokens are already forgotten.
   */
  async function logout(): Promise<void> {
    const refreshToken = tokens.value?.refreshToken
    clearTokens(false)
    me.value = null
    if (!refreshToken) return
    try {
      await unwrap(api.POST('/auth/logout', { body: { refresh_token: refreshToken } }))
    } catch {
      // Nothing to do: the token expires on its own.
    }
  }

  return { me, isLoggedIn, username, role, permissions, expired, can, loadMe, ensureMe, login, register, logout }
})
