// The gateway's log: one line per event, ids and counts only. Message text, names and topics are never
// passed here; as a second guard, anything shaped like a mainland mobile number is masked.
const PHONE = /(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)/g

export function redact (s) {
  return String(s).replace(PHONE, '1**********')
}

export function makeLogger (write = line => process.stderr.write(line + '\n')) {
  const out = (level, fields) => {
    const parts = [new Date().toISOString(), level]
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined || v === null || v === '') continue
      parts.push(k === 'msg' ? String(v) : `${k}=${v}`)
    }
    write(redact(parts.join(' ')))
  }
  return {
    info: fields => out('info', fields),
    warn: fields => out('warn', fields),
    error: fields => out('error', fields),
  }
}

export const silentLogger = { info () {}, warn () {}, error () {} }
