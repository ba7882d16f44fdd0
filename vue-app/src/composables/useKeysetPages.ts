import { ref, shallowRef, triggerRef } from 'vue'

// A list read in keyset pages (GET /api/v1/orders?cursor=...): the rows loaded so far,
// whether more exist, and loadMore() to fetch the next page. Only one page is in flight at
// a time (a scroll fires many "near the end" signals), and reset() starts over — for a new
// filter — discarding an answer still on its way for the old one.

export interface Page<T> {
  items: T[]
  /** The cursor of the next page; empty on the last one. */
  next: string
}

export function useKeysetPages<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {
  /** The rows loaded, in order. Shallow: the array is replaced or triggered, its rows are not made reactive. */
  const items = shallowRef<T[]>([])
  const done = ref(false)
  const loading = ref(false)
  const error = shallowRef<unknown>(null)
  let cursor: string | undefined
  let generation = 0
  let inflight: Promise<void> | null = null

  /** loadMore fetches the next page unless all are loaded or one is on its way. */
  function loadMore(): Promise<void> {
    if (done.value) return Promise.resolve()
    inflight ??= (async () => {
      const gen = generation
      loading.value = true
      error.value = null
      try {
        const page = await fetchPage(cursor)
        if (gen !== generation) return
        items.value.push(...page.items)
        triggerRef(items)
        cursor = page.next || undefined
        done.value = !page.next
      } catch (e) {
        if (gen === generation) error.value = e
      } finally {
        if (gen === generation) {
          loading.value = false
          inflight = null
        }
      }
    })()
    return inflight
  }

  /** reset forgets every row and cursor; the next loadMore reads the first page. */
  function reset() {
    generation++
    inflight = null
    items.value = []
    cursor = undefined
    done.value = false
    loading.value = false
    error.value = null
  }

  /** replace swaps a loaded row for a newer one (a live update), matched by `same`. */
  function replace(same: (row: T) => boolean, row: T) {
    const i = items.value.findIndex(same)
    if (i < 0) return
    items.value[i] = row
    triggerRef(items)
  }

  return { items, done, loading, error, loadMore, reset, replace }
}
