import { ref, shallowRef } from 'vue'
import { ApiError } from '@/api'

// useKeysetList: a list read in keyset pages (the API's `cursor` / `next_cursor`: pass the
// last page's next_cursor to get the following one, empty on the last page). The operator
// pages (orders, fulfilment) load the first page, then more on request; a change of filter
// reloads from the start. A reload that is overtaken by another (filters changed again
// while it was in flight) is dropped, so the rows always match the latest filters.

export interface Page<T> {
  items: T[]
  next: string
}

export function useKeysetList<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>, keyOf: (item: T) => string) {
  const items = shallowRef<T[]>([])
  const next = ref('')
  const loading = ref(false)
  const loaded = ref(false) // the first page has arrived at least once
  const error = ref<ApiError | null>(null)
  let generation = 0

  async function load(cursor: string | undefined, append: boolean) {
    const gen = ++generation
    loading.value = true
    error.value = null
    try {
      const page = await fetchPage(cursor)
      if (gen !== generation) return
      items.value = append ? mergeAppend(items.value, page.items, keyOf) : page.items
      next.value = page.next
      loaded.value = true
    } catch (e) {
      if (gen !== generation) return
      error.value = e instanceof ApiError ? e : new ApiError(0, 'unknown', String(e), null)
    } finally {
      if (gen === generation) loading.value = false
    }
  }

  /** reload reads the first page again (after a filter change, or to refresh). */
  const reload = () => load(undefined, false)

  /** loadMore appends the next page; nothing when on the last page or while loading. */
  function loadMore() {
    if (!next.value || loading.value) return Promise.resolve()
    return load(next.value, true)
  }

  /** replace replaces the row with the same key and adds nothing; returns whether it did. */
  function replace(item: T): boolean {
    const i = items.value.findIndex((x) => keyOf(x) === keyOf(item))
    if (i < 0) return false
    const copy = items.value.slice()
    copy[i] = item
    items.value = copy
    return true
  }

  return { items, next, loading, loaded, error, reload, loadMore, replace }
}

// A row that moved between pages while paging (a newer row pushed it down) would come
// twice; the later copy is dropped.
function mergeAppend<T>(rows: T[], more: T[], keyOf: (item: T) => string): T[] {
  const seen = new Set(rows.map(keyOf))
  return [...rows, ...more.filter((x) => !seen.has(keyOf(x)))]
}
