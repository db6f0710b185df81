// The gateway between ordinary WeChat groups (through any Wechaty puppet) and gridbot's bridge channel.
//
// In:  every room and private message but the bot's own → a signed event, journalled on disk first, then
//      posted to gridbot's POST /bridge/events in order; retried with exponential backoff and jitter while
//      gridbot answers 5xx/429 or does not answer; dropped (and logged, without its text) only on a 4xx.
// Out: POST /send, gridbot's signed {"chat_id" | "user_id", "text", "id"}; checked (HMAC, 300 s), a repeated
//      id dropped, journalled, then said in the room or to the contact, long texts split between lines,
//      paced per conversation and overall with jitter.
import http from 'node:http'
import path from 'node:path'
import { WechatyBuilder, types } from 'wechaty'

import { makeLogger } from './log.js'
import { Pacer } from './pacer.js'
import { signedHeaders, verify } from './sign.js'
import { splitText } from './split.js'
import { Spool } from './spool.js'

const M = types.Message
const KINDS = new Map([
  [M.Text, 'text'],
  [M.GroupNote, 'jielong'],
  [M.Audio, 'voice'],
  [M.Image, 'image'],
  [M.Emoticon, 'image'],
  [M.Attachment, 'file'],
  [M.Video, 'file'],
  [M.Recalled, 'recall'],
])
const MAX_BODY = 256 * 1024

/** The kind of event a Wechaty message type becomes, or undefined (not relayed). */
export function kindOf (type) {
  return KINDS.get(type)
}

class Wake {
  constructor () { this.waiters = new Set() }
  /** Resolves after `ms`, or at the next notify(). */
  wait (ms) {
    return new Promise(resolve => {
      const done = () => { clearTimeout(t); this.waiters.delete(done); resolve() }
      const t = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)))
      this.waiters.add(done)
    })
  }

  notify () { for (const w of [...this.waiters]) w() }
}

export function parseListen (listen) {
  if (listen && typeof listen === 'object') return { host: listen.host ?? '127.0.0.1', port: Number(listen.port ?? 0) }
  const s = String(listen ?? '127.0.0.1:8090')
  const i = s.lastIndexOf(':')
  if (i < 0) return { host: '127.0.0.1', port: Number(s) }
  return { host: s.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(s.slice(i + 1)) }
}

export function parseRooms (rooms) {
  if (rooms === undefined || rooms === null || rooms === '') return null
  const list = Array.isArray(rooms) ? rooms : String(rooms).split(/[,，、\n]/)
  const set = new Set(list.map(r => String(r).trim()).filter(Boolean))
  return set.size ? set : null
}

/**
 * createGateway({ puppet, eventsUrl, secret, listen, ratePerMinute, spoolDir, rooms }) → { start(), stop(), url }
 *
 *   puppet          a Wechaty Puppet instance, or a puppet's package name (e.g. "wechaty-puppet-service")
 *   eventsUrl       gridbot's POST /bridge/events
 *   secret          GRIDBOT_BRIDGE_SECRET, shared with gridbot
 *   listen          "host:port" (or {host, port}) of the send endpoint; port 0 picks a free one
 *   ratePerMinute   messages a minute to one room or contact (default 8); totalPerMinute overall (default 20)
 *   spoolDir        where the two journals live (default ./spool)
 *   rooms           optional allow-list of room ids or topics (array or comma-separated); others are
 *                   neither relayed nor written to
 */
export function createGateway (opts) {
  const {
    puppet, puppetOptions, eventsUrl, secret, listen = '127.0.0.1:8090', ratePerMinute = 8, totalPerMinute = 20,
    jitter = 0.5, spoolDir = 'spool', rooms, maxChars = 1000, name = 'gridbot-gateway', logger = makeLogger(),
    postTimeoutMs = 10000, retryBaseMs = 1000, retryMaxMs = 60000, sendAttempts = 6, maxQueuePerChat = 30,
  } = opts
  if (!eventsUrl) throw new Error('eventsUrl (GRIDBOT_EVENTS_URL) is required')
  if (!secret) throw new Error('secret (GRIDBOT_BRIDGE_SECRET) is required')
  if (!puppet) throw new Error('puppet is required')
  const log = logger
  const allowed = parseRooms(rooms)
  const bot = WechatyBuilder.build({ name, puppet, ...(puppetOptions ? { puppetOptions } : {}) })
  const inbox = new Spool(path.join(spoolDir, 'events.jsonl'))
  const outbox = new Spool(path.join(spoolDir, 'sends.jsonl'))
  const pacer = new Pacer({ perChat: ratePerMinute, total: totalPerMinute, jitter })
  const inWake = new Wake()
  const outWake = new Wake()
  const stopWake = new Wake() // backoff sleeps: only stop() cuts them short
  const sendState = new Map() // outbox key -> { attempts, notBefore }
  let server = null
  let stopped = true
  let loops = []
  let inFlight = null // AbortController of the current POST to gridbot
  const gw = { url: null, bot, inbox, outbox }

  const backoff = attempt => {
    const cap = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempt - 1, 30))
    return cap / 2 + Math.random() * cap / 2
  }

  async function roomAllowed (room) {
    if (!allowed) return true
    if (allowed.has(room.id)) return true
    try { return allowed.has(await room.topic()) } catch { return false }
  }

  // -- in ---------------------------------------------------------------------------------------------

  async function onMessage (msg) {
    if (msg.self()) return
    const type = msg.type()
    const kind = kindOf(type)
    if (!kind) {
      log.info({ msg: 'message not relayed (type)', id: msg.id, type: M[type] ?? type })
      return
    }
    const room = msg.room()
    const talker = msg.talker()
    if (!room && talker.type() === types.Contact.Official) return // 公众号 and service accounts
    if (room && !(await roomAllowed(room))) {
      log.info({ msg: 'room not in GATEWAY_ROOMS: message not relayed', room: room.id, id: msg.id })
      return
    }
    if (inbox.has(msg.id)) return
    let senderName = ''
    if (room) { try { senderName = (await room.alias(talker)) || '' } catch { /* no alias */ } }
    senderName = senderName || talker.name() || ''
    let text = msg.text() || ''
    const ev = {
      msg_id: msg.id,
      chat_id: room ? room.id : '',
      chat_name: room ? await room.topic() : '',
      sender_id: talker.id,
      sender_name: senderName,
      ts: Math.floor(msg.date().getTime() / 1000),
      kind,
    }
    if (kind === 'recall') {
      // Wechaty's convention (Message.toRecalled): a Recalled message's text is the recalled message's id.
      ev.recalls = text
      text = ''
    } else if (kind === 'voice') {
      text = transcript(text)
    } else if (kind === 'image' || kind === 'file') {
      text = ''
    }
    ev.text = text
    if (inbox.add(msg.id, ev)) {
      log.info({ msg: 'event spooled', id: msg.id, kind, room: ev.chat_id || undefined, pending: inbox.size })
      inWake.notify()
    }
  }

  async function post (ev) {
    const body = Buffer.from(JSON.stringify(ev))
    inFlight = new AbortController()
    const timer = setTimeout(() => inFlight?.abort(), postTimeoutMs)
    try {
      const res = await fetch(eventsUrl, { method: 'POST', body, headers: signedHeaders(secret, body), signal: inFlight.signal })
      await res.arrayBuffer().catch(() => {})
      return { status: res.status, retryAfter: Number(res.headers.get('retry-after')) || 0 }
    } catch (e) {
      return { status: 0, error: e?.cause?.code || e?.name || 'error' }
    } finally {
      clearTimeout(timer)
      inFlight = null
    }
  }

  async function inLoop () {
    let attempt = 0
    while (!stopped) {
      const head = inbox.first()
      if (!head) { await inWake.wait(60000); continue }
      const [key, ev] = head
      const r = await post(ev)
      if (stopped) break
      if (r.status >= 200 && r.status < 300) {
        inbox.done(key)
        if (attempt) log.info({ msg: 'gridbot reachable again', id: key, attempts: attempt + 1 })
        attempt = 0
        continue
      }
      const retry = r.status === 0 || r.status >= 500 || r.status === 408 || r.status === 425 || r.status === 429
      if (!retry) {
        log.warn({ msg: 'event dropped: gridbot refused it', id: key, kind: ev.kind, status: r.status,
          hint: r.status === 403 ? 'check GRIDBOT_BRIDGE_SECRET and the clock' : r.status === 404 ? 'is the bridge configured in gridbot?' : undefined })
        inbox.done(key)
        attempt = 0
        continue
      }
      attempt++
      const wait = Math.max(backoff(attempt), (r.retryAfter || 0) * 1000)
      if (attempt === 1 || attempt % 10 === 0) {
        log.warn({ msg: 'gridbot not taking events, retrying', id: key, status: r.status || r.error,
          attempt, wait_ms: Math.round(wait), pending: inbox.size })
      }
      await stopWake.wait(wait)
    }
  }

  // -- out --------------------------------------------------------------------------------------------

  function readBody (req) {
    return new Promise((resolve, reject) => {
      const chunks = []
      let n = 0
      req.on('data', c => {
        n += c.length
        if (n > MAX_BODY) { reject(Object.assign(new Error('too large'), { status: 413 })); req.destroy() } else chunks.push(c)
      })
      req.on('end', () => resolve(Buffer.concat(chunks)))
      req.on('error', reject)
    })
  }

  function reply (res, status, obj, headers = {}) {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers })
    res.end(JSON.stringify(obj))
  }

  async function onRequest (req, res) {
    const url = new URL(req.url, 'http://x')
    if (req.method === 'GET' && url.pathname === '/healthz') {
      return reply(res, 200, { ok: true, logged_in: bot.isLoggedIn, pending_events: inbox.size, pending_sends: outbox.size })
    }
    if (url.pathname !== '/send') return reply(res, 404, { error: 'not found' })
    if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' })
    let body
    try { body = await readBody(req) } catch (e) { return reply(res, e.status || 400, { error: 'bad body' }) }
    const why = verify(secret, req.headers['x-gridbot-timestamp'], req.headers['x-gridbot-signature'], body)
    if (why) {
      log.warn({ msg: 'send refused', reason: why, from: req.socket.remoteAddress })
      return reply(res, 403, { error: why })
    }
    let d
    try { d = JSON.parse(body.toString('utf8')) } catch { return reply(res, 400, { error: 'malformed JSON' }) }
    const chat = typeof d?.chat_id === 'string' && d.chat_id ? d.chat_id : null
    const user = typeof d?.user_id === 'string' && d.user_id ? d.user_id : null
    const okId = (typeof d?.id === 'string' && d.id) || Number.isFinite(d?.id)
    if (!okId || typeof d.text !== 'string' || !d.text.trim() || (!chat) === (!user)) {
      return reply(res, 400, { error: 'expected {"chat_id" or "user_id", "text", "id"}' })
    }
    const id = String(d.id)
    if (outbox.has(`send:${id}`)) return reply(res, 200, { ok: true, duplicate: true })
    if (chat && allowed && !allowed.has(chat)) {
      let room
      try { room = await bot.Room.find({ id: chat }) } catch { room = undefined }
      if (!room || !(await roomAllowed(room))) {
        log.warn({ msg: 'send refused: room not in GATEWAY_ROOMS', room: chat, id })
        return reply(res, 403, { error: 'room not allowed' })
      }
    }
    const dest = chat ? `room:${chat}` : `user:${user}`
    let queued = 0
    for (const [, rec] of outbox.pending) if (rec.dest === dest) queued++
    if (queued >= maxQueuePerChat) return reply(res, 429, { error: 'queue full' }, { 'Retry-After': '60' })
    const parts = splitText(d.text, maxChars)
    parts.forEach((text, i) => {
      outbox.add(`${id}#${i}`, { dest, ...(chat ? { chat_id: chat } : { user_id: user }), text, id, part: i, parts: parts.length })
    })
    outbox.remember(`send:${id}`)
    log.info({ msg: 'send queued', id, to: chat ? 'room' : 'contact', parts: parts.length, pending: outbox.size })
    outWake.notify()
    return reply(res, 200, { ok: true, duplicate: false })
  }

  async function deliver (rec) {
    if (rec.chat_id) {
      const room = await bot.Room.find({ id: rec.chat_id })
      if (!room) throw new Error('room not found')
      await room.say(rec.text)
    } else {
      const contact = await bot.Contact.find({ id: rec.user_id })
      if (!contact) throw new Error('contact not found')
      await contact.say(rec.text)
    }
  }

  async function outLoop () {
    while (!stopped) {
      if (!bot.isLoggedIn || outbox.size === 0) { await outWake.wait(outbox.size ? 1000 : 60000); continue }
      const now = Date.now()
      let pick = null
      let earliest = now + 60000
      const seenDest = new Set()
      for (const [key, rec] of outbox.pending) {
        if (seenDest.has(rec.dest)) continue // one conversation's messages go in order
        seenDest.add(rec.dest)
        const t = Math.max(pacer.readyAt(rec.dest), sendState.get(key)?.notBefore ?? 0)
        if (t <= now) { pick = [key, rec]; break }
        earliest = Math.min(earliest, t)
      }
      if (!pick) { await outWake.wait(earliest - now); continue }
      const [key, rec] = pick
      pacer.take(rec.dest)
      try {
        await deliver(rec)
        outbox.done(key)
        sendState.delete(key)
        log.info({ msg: 'sent', id: rec.id, part: rec.parts > 1 ? `${rec.part + 1}/${rec.parts}` : undefined, to: rec.chat_id ? 'room' : 'contact' })
      } catch (e) {
        const st = sendState.get(key) ?? { attempts: 0 }
        st.attempts++
        if (st.attempts >= sendAttempts) {
          log.error({ msg: 'send dropped after retries', id: rec.id, to: rec.chat_id ? 'room' : 'contact', error: e?.name })
          outbox.done(key)
          sendState.delete(key)
        } else {
          st.notBefore = Date.now() + backoff(st.attempts)
          sendState.set(key, st)
          log.warn({ msg: 'send failed, will retry', id: rec.id, attempt: st.attempts, error: e?.name })
        }
      }
    }
  }

  // -- life -------------------------------------------------------------------------------------------

  // One message at a time, so that the spool keeps the order in which they came (a recall after its message).
  let chain = Promise.resolve()
  bot.on('message', msg => {
    chain = chain.then(() => onMessage(msg)).catch(e => log.error({ msg: 'message not spooled', id: msg?.id, error: e?.name }))
  })
  bot.on('login', user => { log.info({ msg: 'logged in', user: user.id }); outWake.notify() })
  bot.on('logout', user => log.warn({ msg: 'logged out', user: user?.id }))
  bot.on('scan', (qrcode, status) => {
    if (status === types.ScanStatus.Waiting || status === types.ScanStatus.Timeout) {
      log.info({ msg: 'scan to log in', qrcode: `https://wechaty.js.org/qrcode/${encodeURIComponent(qrcode)}` })
    }
  })
  bot.on('error', e => log.error({ msg: 'wechaty error', error: e?.name, code: e?.code }))

  gw.start = async () => {
    inbox.open()
    outbox.open()
    stopped = false
    const { host, port } = parseListen(listen)
    server = http.createServer((req, res) => {
      onRequest(req, res).catch(e => {
        log.error({ msg: 'send endpoint error', error: e?.name })
        if (!res.headersSent) reply(res, 500, { error: 'internal' })
      })
    })
    await new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve) })
    const addr = server.address()
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    gw.url = `http://${h}:${addr.port}/send`
    await bot.start()
    loops = [inLoop(), outLoop()]
    log.info({ msg: 'gateway started', send_url: gw.url, pending_events: inbox.size, pending_sends: outbox.size,
      rooms: allowed ? allowed.size : 'all' })
    return gw
  }

  gw.stop = async () => {
    if (stopped) return
    stopped = true
    inFlight?.abort()
    inWake.notify()
    outWake.notify()
    stopWake.notify()
    await new Promise(resolve => { server.close(() => resolve()); server.closeAllConnections?.() })
    await Promise.allSettled(loops)
    await bot.stop()
    inbox.close()
    outbox.close()
  }

  return gw
}

/** A voice message's transcript, if the puppet put one in its text (not a length, not raw XML). */
function transcript (text) {
  const t = (text || '').trim()
  if (!t || t.startsWith('<') || /^\d+(\.\d+)?$/.test(t)) return ''
  return t
}
