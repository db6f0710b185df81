// gridbot's bridge signature: hex HMAC-SHA256 of `timestamp + "." + body` under the shared secret,
// in the headers X-Gridbot-Timestamp (unix seconds) and X-Gridbot-Signature. The same rule both ways.
import { createHmac, timingSafeEqual } from 'node:crypto'

export const WINDOW_S = 300

export function sign (secret, timestamp, body) {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')
}

export function signedHeaders (secret, body, now = Date.now()) {
  const ts = String(Math.floor(now / 1000))
  return {
    'Content-Type': 'application/json',
    'X-Gridbot-Timestamp': ts,
    'X-Gridbot-Signature': sign(secret, ts, body),
  }
}

/** null when the request is genuine and fresh, else the reason (never the body). */
export function verify (secret, timestamp, signature, body, now = Date.now()) {
  if (!/^\d{1,12}$/.test(timestamp || '')) return 'missing or malformed timestamp'
  if (Math.abs(now / 1000 - Number(timestamp)) > WINDOW_S) return 'stale timestamp'
  const want = Buffer.from(sign(secret, timestamp, body))
  const got = Buffer.from(String(signature || '').trim().toLowerCase())
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'bad signature'
  return null
}
