import { createI18n } from 'vue-i18n'
import en from './en'
import zhCN from './zh-CN'

export const locales = [
  { code: 'en', label: 'English' },
  { code: 'zh-CN', label: '简体中文' },
] as const
export type Locale = (typeof locales)[number]['code']

const storageKey = 'ordermesh.locale'

function initialLocale(): Locale {
  const saved = globalThis.localStorage?.getItem(storageKey)
  if (saved && locales.some((l) => l.code === saved)) return saved as Locale
  return globalThis.navigator?.language?.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en'
}

// Composition mode (legacy: false): components call useI18n(); code outside components
// (the API layer) uses i18n.global.
export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN },
})

/** setLocale switches the language, remembers it and sets <html lang> for screen readers. */
export function setLocale(locale: Locale) {
  i18n.global.locale.value = locale
  globalThis.localStorage?.setItem(storageKey, locale)
  if (typeof document !== 'undefined') document.documentElement.lang = locale
}

if (typeof document !== 'undefined') document.documentElement.lang = i18n.global.locale.value
