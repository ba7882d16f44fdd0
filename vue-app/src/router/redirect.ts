import type { LocationQueryValue } from 'vue-router'

/** safeRedirect returns ?redirect= when it is a path of this app (never another site), else null. */
export function safeRedirect(value: LocationQueryValue | LocationQueryValue[] | undefined): string | null {
  const v = Array.isArray(value) ? value[0] : value
  return typeof v === 'string' && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\') ? v : null
}
