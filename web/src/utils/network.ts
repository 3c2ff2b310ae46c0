// The shape of a static network in the create-VM dialog. Only the form is checked here (an IP
// address, a CIDR prefix, at most three DNS servers); whether the address is usable — not a
// network or broadcast address, the gateway inside the network — is the server's to say
// (422 invalid_network, shown with its detail).

export const MAX_DNS = 3

export function isIPv4(text: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  return !!m && m.slice(1).every((part) => Number(part) <= 255)
}

export function isIPv6(text: string): boolean {
  if (!text.includes(':') || !/^[0-9a-fA-F:.]+$/.test(text)) return false
  const halves = text.split('::')
  if (halves.length > 2) return false
  const groups = halves.flatMap((h) => (h ? h.split(':') : []))
  const tail = groups[groups.length - 1]
  const v4Tail = !!tail && tail.includes('.')
  if (v4Tail && !isIPv4(tail)) return false
  const hex = v4Tail ? groups.slice(0, -1) : groups
  if (!hex.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false
  const count = hex.length + (v4Tail ? 2 : 0) // an embedded IPv4 address takes two groups
  return halves.length === 2 ? count <= 7 : count === 8
}

export function isIP(text: string): boolean {
  return isIPv4(text) || isIPv6(text)
}

/** `address/prefix`, IPv4 (prefix 0–32) or IPv6 (0–128). */
export function isCidr(text: string): boolean {
  const parts = text.trim().split('/')
  if (parts.length !== 2 || !/^\d{1,3}$/.test(parts[1])) return false
  const prefix = Number(parts[1])
  if (isIPv4(parts[0])) return prefix <= 32
  return isIPv6(parts[0]) && prefix <= 128
}

/** The DNS servers typed into one field, split on commas and white space. */
export function splitDns(text: string): string[] {
  return text.split(/[\s,，]+/).filter(Boolean)
}

export interface NetworkForm {
  address: string
  gateway: string
  dns: string
}

/** The i18n key of the first problem with the form's shape, or null when it can be sent. */
export function networkProblem(form: NetworkForm): string | null {
  if (!isCidr(form.address)) return 'servers.createDialog.badAddress'
  if (form.gateway.trim() && !isIP(form.gateway.trim())) return 'servers.createDialog.badGateway'
  const dns = splitDns(form.dns)
  if (dns.length > MAX_DNS || !dns.every(isIP)) return 'servers.createDialog.badDns'
  return null
}

/** The request's `network` for the form. */
export function networkBody(form: NetworkForm): { address: string; gateway?: string; dns?: string[] } {
  const body: { address: string; gateway?: string; dns?: string[] } = { address: form.address.trim() }
  if (form.gateway.trim()) body.gateway = form.gateway.trim()
  const dns = splitDns(form.dns)
  if (dns.length) body.dns = dns
  return body
}
