import { i18n } from '@/i18n'

// Formatting shared by every page, in the user's language.

/** money formats an amount in minor units (cents) of an ISO currency, e.g. 1250 EUR -> €12.50. */
export function money(minor: number, currency: string): string {
  const locale = i18n.global.locale.value
  try {
    const f = new Intl.NumberFormat(locale, { style: 'currency', currency })
    const digits = f.resolvedOptions().maximumFractionDigits ?? 2
    return f.format(minor / 10 ** digits)
  } catch {
    // An unknown currency code: show the minor units as they are.
    return `${minor} ${currency}`
  }
}

/** dateTime formats an RFC 3339 time as a short local date and time. */
export function dateTime(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return new Intl.DateTimeFormat(i18n.global.locale.value, { dateStyle: 'medium', timeStyle: 'medium' }).format(d)
}
