import { afterEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { useNarrow } from '@/composables/useNarrow'

// jsdom has no matchMedia: a fake one whose answer the test changes.
function fakeMedia(matches: boolean) {
  const listeners = new Set<(e: MediaQueryListEvent) => void>()
  const query = {
    matches,
    addEventListener: (_: string, cb: (e: MediaQueryListEvent) => void) => listeners.add(cb),
    removeEventListener: (_: string, cb: (e: MediaQueryListEvent) => void) => listeners.delete(cb),
  }
  const asked: string[] = []
  vi.stubGlobal('matchMedia', (q: string) => (asked.push(q), query))
  const change = (m: boolean) => listeners.forEach((cb) => cb({ matches: m } as MediaQueryListEvent))
  return { asked, change, listeners }
}

afterEach(() => vi.unstubAllGlobals())

describe('useNarrow', () => {
  it('follows the media query and stops listening with its scope', () => {
    const media = fakeMedia(false)
    const scope = effectScope()
    const narrow = scope.run(() => useNarrow(600))!
    expect(media.asked).toEqual(['(max-width: 600px)'])
    expect(narrow.value).toBe(false)
    media.change(true)
    expect(narrow.value).toBe(true)
    scope.stop()
    expect(media.listeners.size).toBe(0)
  })

  it('starts narrow on a narrow window', () => {
    fakeMedia(true)
    const scope = effectScope()
    expect(scope.run(() => useNarrow())!.value).toBe(true)
    scope.stop()
  })
})
