import { ref, type Ref } from 'vue'
import type { FormInstance } from 'element-plus'
import { ApiError } from '@/api'

/**
 * useFormSubmit: the submit of an Element Plus form that calls the API: validate, then run
 * `send` while `busy`; a failure is kept in `serverError` (an ApiError, its message
 * translated) for the form to show in an alert.
 */
export function useFormSubmit(form: Ref<FormInstance | undefined>, send: () => Promise<unknown>) {
  const busy = ref(false)
  const serverError = ref<ApiError | null>(null)

  async function submit() {
    serverError.value = null
    if (!(await form.value?.validate().catch(() => false))) return
    busy.value = true
    try {
      await send()
    } catch (e) {
      serverError.value = e instanceof ApiError ? e : new ApiError(0, 'unknown', String(e), null)
    } finally {
      busy.value = false
    }
  }

  return { busy, serverError, submit }
}
