import { shallowRef, ref } from 'vue'
import type { Session } from './types'

// The token holder: the one place the tokens live, so that the API client, the session
// store and the live socket all see the same session without importing one another.
//
// Where the refresh token is kept: the server hands it out in the response body and takes
// it back in the request body (edge/sessions.go); it sets no cookie, so the client must
// store it. We use sessionStorage: the session survives a reload but is gone when the tab
// closes, and one tab's session is not shared with others. Sharing it (localStorage) would
// let two tabs refresh the same token at once, which the server treats as token reuse and
// answers by revoking the whole session (see sessions.go). The access token is kept with
// it so that a reload does not spend the refresh token. Both are readable by scripts on
// the page; the CSP and escaping must keep such scripts out.

export interface Tokens {
  accessToken: string
  refreshToken: string
  /** Epoch milliseconds when the access token expires. */
  accessExpiresAt: number
  username: string
  role: Session['role']
}

const storageKey = 'ordermesh.session'

function load(): Tokens | null {
  try {
    const raw = globalThis.sessionStorage?.getItem(storageKey)
    return raw ? (JSON.parse(raw) as Tokens) : null
  } catch {
    return null
  }
}

/** The current tokens, null when logged out. Reactive: watch it to follow logins, refreshes and logouts. */
export const tokens = shallowRef<Tokens | null>(load())

/** True once a refresh was refused: the session ended and the user must log in again. */
export const sessionExpired = ref(false)

/** setTokens stores the session of a login or refresh response. */
export function setTokens(s: Session, now = Date.now()) {
  const t: Tokens = {
    accessToken: s.access_token,
    refreshToken: s.refresh_token,
    accessExpiresAt: now + s.expires_in * 1000,
    username: s.username,
    role: s.role,
  }
  tokens.value = t
  sessionExpired.value = false
  globalThis.sessionStorage?.setItem(storageKey, JSON.stringify(t))
}

/** clearTokens forgets the session (logout, or a refused refresh with expired = true). */
export function clearTokens(expired = false) {
  tokens.value = null
  sessionExpired.value = expired
  globalThis.sessionStorage?.removeItem(storageKey)
}
