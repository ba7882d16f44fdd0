import { onScopeDispose, ref } from 'vue'

/**
 * useNarrow tells whether the window is phone-wide (at most `maxWidth` px), following
 * resizes; wide tables drop their less needed columns then rather than scroll sideways.
 */
export function useNarrow(maxWidth = 600) {
  const query = globalThis.matchMedia?.(`(max-width: ${maxWidth}px)`)
  const narrow = ref(query?.matches ?? false)
  const update = (e: MediaQueryListEvent) => (narrow.value = e.matches)
  query?.addEventListener('change', update)
  onScopeDispose(() => query?.removeEventListener('change', update))
  return narrow
}
