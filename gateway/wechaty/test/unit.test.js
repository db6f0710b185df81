// The gateway's parts, and the gateway over wechaty-puppet-mock against a stand-in gridbot (a Node HTTP
// server that answers what the test tells it): retries, drops, the spool across a gateway restart, the
// allow-list, message kinds, pacing and splitting.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { FileBox } from 'file-box'
import * as PUPPET from 'wechaty-puppet'
import { PuppetMock, mock } from 'wechaty-puppet-mock'

import { createGateway, kindOf, parseListen, parseRooms } from '../src/gateway.js'
import { makeLogger, redact } from '../src/log.js'
import { Pacer } from '../src/pacer.js'
import { sign, signedHeaders, verify } from '../src/sign.js'
import { splitText } from '../src/split.js'
import { Spool } from '../src/spool.js'

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-unit-'))

describe('signature', () => {
  test("matches gridbot's bot.channels.bridge.sign", () => {
    const body = Buffer.from('{"msg_id": "w1", "text": "全家都好"}')
    assert.equal(sign('s3cret', '1770678000', body), '6ce01250698650de26d5e61788f0799cd19375d1fe230beec605730f21082ce7')
  })
  test('verify: fresh and genuine passes; wrong secret, tampered body, stale or missing timestamp fail', () => {
    const body = Buffer.from('{"id": 1}')
    const h = signedHeaders('k', body)
    const ts = h['X-Gridbot-Timestamp']
    assert.equal(verify('k', ts, h['X-Gridbot-Signature'], body), null)
    assert.equal(verify('k', ts, h['X-Gridbot-Signature'].toUpperCase(), body), null)
    assert.equal(verify('other', ts, h['X-Gridbot-Signature'], body), 'bad signature')
    assert.equal(verify('k', ts, h['X-Gridbot-Signature'], Buffer.from('{"id": 2}')), 'bad signature')
    assert.equal(verify('k', ts, '', body), 'bad signature')
    assert.equal(verify('k', undefined, h['X-Gridbot-Signature'], body), 'missing or malformed timestamp')
    const old = String(Number(ts) - 301)
    assert.equal(verify('k', old, sign('k', old, body), body), 'stale timestamp')
    const edge = String(Number(ts) - 299)
    assert.equal(verify('k', edge, sign('k', edge, body), body), null)
  })
})

describe('splitText', () => {
  test('short texts stay whole; long ones are cut between lines, each part within the limit', () => {
    assert.deepEqual(splitText('一行', 10), ['一行'])
    const lines = Array.from({ length: 30 }, (_, i) => `第${i + 1}户：5-${10 + i} 已报平安`)
    const parts = splitText(lines.join('\n'), 60)
    assert.ok(parts.length > 1)
    for (const p of parts) assert.ok([...p].length <= 60)
    assert.deepEqual(parts.join('\n').split('\n'), lines, 'every line whole, in order')
  })
  test('a line longer than the limit is cut inside it; emoji are not broken', () => {
    const parts = splitText('😀'.repeat(25), 10)
    assert.deepEqual(parts.map(p => [...p].length), [10, 10, 5])
  })
})

describe('Spool', () => {
  test('pending items survive a reopen in order; done items stay duplicates; a torn line is ignored', () => {
    const f = path.join(tmp(), 's', 'events.jsonl')
    const s = new Spool(f).open()
    assert.equal(s.add('a', { n: 1 }), true)
    assert.equal(s.add('b', { n: 2 }), true)
    assert.equal(s.add('a', { n: 9 }), false)
    s.add('c', { n: 3 })
    s.done('b')
    s.close()
    fs.appendFileSync(f, '{"add":"d","rec":{"n":')
    const r = new Spool(f).open()
    assert.deepEqual(r.entries(), [['a', { n: 1 }], ['c', { n: 3 }]])
    assert.equal(r.add('b', {}), false, 'b was delivered before the restart')
    assert.equal(r.first()[0], 'a')
    r.close()
    assert.equal((fs.statSync(f).mode & 0o777).toString(8), '600')
  })
  test("a drained spool is rewritten soon: a delivered message's text leaves the disk", async () => {
    const f = path.join(tmp(), 'events.jsonl')
    const s = new Spool(f, { lingerMs: 50 }).open()
    s.add('m1', { text: '我妈今天低烧37.5' })
    assert.match(fs.readFileSync(f, 'utf8'), /低烧/)
    s.done('m1')
    await sleep(150)
    const after = fs.readFileSync(f, 'utf8')
    assert.doesNotMatch(after, /低烧/)
    assert.match(after, /m1/, 'the id is kept, for deduplication')
    s.close()
  })
  test('compaction keeps pending items and the recent keys', () => {
    const f = path.join(tmp(), 'sends.jsonl')
    const s = new Spool(f, { compactEvery: 10, keep: 50 }).open()
    for (let i = 0; i < 100; i++) { s.add(`k${i}`, { i }); if (i % 7) s.done(`k${i}`) }
    s.close()
    const lines = fs.readFileSync(f, 'utf8').trim().split('\n')
    assert.ok(lines.length < 40, `compacted (${lines.length} lines)`)
    const r = new Spool(f, { keep: 50 }).open()
    assert.deepEqual(r.entries().map(e => e[0]), Array.from({ length: 15 }, (_, i) => `k${i * 7}`))
    assert.equal(r.has('k99'), true)
    r.close()
  })
})

describe('Pacer', () => {
  test('never more than the rate per chat or overall, with jitter', () => {
    let now = 0
    const p = new Pacer({ perChat: 10, total: 20, jitter: 0.5, now: () => now, random: () => 0.999 })
    const sent = { a: [], b: [], c: [] }
    while (now < 600000) {
      for (const chat of ['a', 'b', 'c']) {
        if (p.readyAt(chat) <= now) { p.take(chat); sent[chat].push(now) }
      }
      now += 100
    }
    const perMinute = times => Math.max(...times.map(t => times.filter(u => u >= t && u < t + 60000).length))
    for (const chat of ['a', 'b', 'c']) assert.ok(perMinute(sent[chat]) <= 10, `${chat}: ${perMinute(sent[chat])}/min`)
    assert.ok(perMinute([...sent.a, ...sent.b, ...sent.c].sort((x, y) => x - y)) <= 20)
  })
})

test('helpers: listen, rooms, kinds, redaction', () => {
  assert.deepEqual(parseListen('0.0.0.0:8090'), { host: '0.0.0.0', port: 8090 })
  assert.deepEqual(parseListen('8091'), { host: '127.0.0.1', port: 8091 })
  assert.equal(parseRooms(''), null)
  assert.deepEqual([...parseRooms('a@chatroom, 5号院、b@chatroom')], ['a@chatroom', '5号院', 'b@chatroom'])
  const T = PUPPET.types.Message
  assert.deepEqual([T.Text, T.GroupNote, T.Audio, T.Image, T.Emoticon, T.Attachment, T.Video, T.Recalled, T.Url].map(kindOf),
    ['text', 'jielong', 'voice', 'image', 'image', 'file', 'file', 'recall', undefined])
  assert.equal(redact('phone=13812345678 id=1234567890123456789'), 'phone=1********** id=1234567890123456789')
})

// -- the gateway over the mock, against a stand-in gridbot -----------------------------------------------

async function standIn (answer) {
  const got = []
  const srv = http.createServer((req, res) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const ok = verify('k', req.headers['x-gridbot-timestamp'], req.headers['x-gridbot-signature'], body) === null
      const ev = JSON.parse(body)
      got.push({ ev, ok })
      const status = answer(ev, got.length)
      if (status === 'hang') return // never answers
      res.writeHead(status, { 'Content-Type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise(resolve => srv.listen(0, '127.0.0.1', resolve))
  return { got, url: `http://127.0.0.1:${srv.address().port}/bridge/events`, close: () => { srv.closeAllConnections(); srv.close() } }
}

async function world ({ eventsUrl, spoolDir = tmp(), rooms, ratePerMinute = 600, maxChars, postTimeoutMs = 2000 }) {
  const mocker = new mock.Mocker()
  const puppet = new PuppetMock({ mocker })
  const log = []
  const gw = createGateway({
    puppet, eventsUrl, secret: 'k', listen: '127.0.0.1:0', ratePerMinute, totalPerMinute: ratePerMinute * 2,
    spoolDir, rooms, maxChars, retryBaseMs: 50, retryMaxMs: 200, postTimeoutMs, name: 'unit',
    logger: makeLogger(line => log.push(line)),
  })
  await gw.start()
  const me = mocker.createContact({ id: 'wxid_me', name: '助手' })
  mocker.login(me)
  const zhang = mocker.createContact({ id: 'wxid_zhang', name: '张三' })
  const room = mocker.createRoom({ id: 'r5@chatroom', topic: '5号院', memberIdList: [me.id, zhang.id] })
  const other = mocker.createRoom({ id: 'family@chatroom', topic: '家人群', memberIdList: [me.id, zhang.id] })
  const roomGot = []
  room.on('message', m => { if (m.payload.talkerId === me.id) roomGot.push({ text: m.text(), at: Date.now() }) })
  let n = 0
  const emit = (type, text, roomId = room.id) => {
    const id = `m${++n}-${Math.random().toString(36).slice(2, 8)}`
    mocker.MessageMock.create({ id, talkerId: zhang.id, roomId, mentionIdList: [], timestamp: Date.now(), type, text })
    puppet.emit('message', { messageId: id })
    return id
  }
  return { gw, mocker, puppet, me, zhang, room, other, roomGot, log, emit, spoolDir }
}

async function until (pred, ms = 5000) {
  const t0 = Date.now()
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await sleep(20)
  }
}

async function send (url, payload, secret = 'k') {
  const body = Buffer.from(JSON.stringify(payload))
  const r = await fetch(url, { method: 'POST', body, headers: signedHeaders(secret, body) })
  return { status: r.status, body: await r.json() }
}

describe('gateway (mock puppet, stand-in gridbot)', () => {
  test('events are signed, carry the fields and kinds; 503 and no answer are retried in order; 4xx dropped without its text', async () => {
    const g = await standIn((ev, n) => (n <= 2 ? 503 : n === 3 ? 'hang' : ev.text === '坏消息 13812345678' ? 400 : 200))
    const w = await world({ eventsUrl: g.url, postTimeoutMs: 300 })
    try {
      const T = PUPPET.types.Message
      const a = w.emit(T.Text, '3-2-501 36.5 正常')
      const b = w.emit(T.GroupNote, '#接龙\n1. 5-10 正常\n2. 5-11 正常')
      const c = w.emit(T.Recalled, a)
      const d = w.emit(T.Text, '坏消息 13812345678')
      const e = w.emit(T.Text, '最后一条')
      w.emit(T.Audio, '') // the mock's say() types a .silk file as Unknown (its media type is application/unknown)
      w.zhang.say(FileBox.fromBase64(Buffer.from('x').toString('base64'), 'photo.png')).to(w.room)
      w.emit(T.Url, 'https://example.com')
      w.me.say('the bot itself').to(w.room)
      await until(() => w.gw.inbox.size === 0 && g.got.filter(x => x.ev.kind === 'image').length === 1)
      const delivered = []
      for (const x of g.got) if (!delivered.some(y => y.msg_id === x.ev.msg_id)) delivered.push(x.ev)
      assert.deepEqual(delivered.map(x => x.kind), ['text', 'jielong', 'recall', 'text', 'text', 'voice', 'image'])
      assert.deepEqual(delivered.slice(0, 5).map(x => x.msg_id), [a, b, c, d, e])
      assert.ok(g.got.every(x => x.ok), 'every post signed')
      assert.equal(g.got.filter(x => x.ev.msg_id === a).length, 4, 'two 503s and a timeout, then stored')
      const ev = delivered[0]
      assert.equal(ev.chat_id, 'r5@chatroom')
      assert.equal(ev.chat_name, '5号院')
      assert.equal(ev.sender_id, 'wxid_zhang')
      assert.equal(ev.sender_name, '张三')
      assert.equal(ev.text, '3-2-501 36.5 正常')
      assert.ok(Math.abs(ev.ts - Date.now() / 1000) < 30)
      assert.equal(delivered[1].text, '#接龙\n1. 5-10 正常\n2. 5-11 正常')
      assert.equal(delivered[2].recalls, a)
      assert.equal(delivered[5].text, '', 'no transcript from the mock')
      assert.ok(!g.got.some(x => x.ev.sender_id === 'wxid_me'), 'never its own messages')
      const logText = w.log.join('\n')
      assert.match(logText, new RegExp(`event dropped: gridbot refused it id=${d} kind=text status=400`))
      assert.doesNotMatch(logText, /坏消息|13812345678|正常|接龙|张三|5号院/)
    } finally {
      await w.gw.stop()
      g.close()
    }
  })

  test('a gateway restarted with events still spooled delivers them afterwards, once each', async () => {
    let up = false
    const g = await standIn(() => (up ? 200 : 503))
    const spoolDir = tmp()
    const w1 = await world({ eventsUrl: g.url, spoolDir })
    const ids = [w1.emit(PUPPET.types.Message.Text, '5-10 正常'), w1.emit(PUPPET.types.Message.Text, '5-11 正常')]
    await until(() => w1.gw.inbox.size === 2 && g.got.length >= 2)
    await w1.gw.stop()
    up = true
    const w2 = await world({ eventsUrl: g.url, spoolDir })
    try {
      await until(() => w2.gw.inbox.size === 0)
      await sleep(200)
      const ok = g.got.filter(x => x.ev.msg_id === ids[0] || x.ev.msg_id === ids[1])
      assert.deepEqual([...new Set(ok.map(x => x.ev.msg_id))], ids)
      // the mock replays nothing, but a puppet that re-emits a message after a reconnect is not relayed twice
      assert.equal(w2.gw.inbox.has(ids[0]), true)
    } finally {
      await w2.gw.stop()
      g.close()
    }
  })

  test('rooms outside the allow-list are neither relayed nor written to; private messages are', async () => {
    const g = await standIn(() => 200)
    const w = await world({ eventsUrl: g.url, rooms: 'r5@chatroom' })
    try {
      w.emit(PUPPET.types.Message.Text, '家里的事', w.other.id)
      const inRoom = w.emit(PUPPET.types.Message.Text, '5-10 正常')
      w.zhang.say('私聊').to(w.me)
      await until(() => g.got.length >= 2)
      await sleep(200)
      // (Wechaty emits a room message after loading the room, so a private one can overtake it)
      const byChat = Object.fromEntries(g.got.map(x => [x.ev.chat_id, x.ev]))
      assert.deepEqual(Object.keys(byChat).sort(), ['', 'r5@chatroom'])
      assert.equal(byChat['r5@chatroom'].msg_id, inRoom)
      assert.equal(byChat[''].text, '私聊')
      assert.equal(byChat[''].chat_name, '')
      assert.equal((await send(w.gw.url, { chat_id: w.other.id, text: '通知', id: 5 })).status, 403)
      const byTopic = await world({ eventsUrl: g.url, rooms: ['5号院'] })
      try {
        assert.equal((await send(byTopic.gw.url, { chat_id: 'r5@chatroom', text: '通知', id: 6 })).status, 200)
        await until(() => byTopic.roomGot.length === 1)
      } finally { await byTopic.gw.stop() }
    } finally {
      await w.gw.stop()
      g.close()
    }
  })

  test('sends: malformed ones 400; a long text split between lines, in order; paced per room', async () => {
    const g = await standIn(() => 200)
    const w = await world({ eventsUrl: g.url, ratePerMinute: 120, maxChars: 40 }) // a 500..750 ms gap
    try {
      assert.equal((await send(w.gw.url, { text: 'x', id: 1 })).status, 400)
      assert.equal((await send(w.gw.url, { chat_id: 'r5@chatroom', user_id: 'u', text: 'x', id: 1 })).status, 400)
      assert.equal((await send(w.gw.url, { chat_id: 'r5@chatroom', text: 'x' })).status, 400)
      const lines = Array.from({ length: 6 }, (_, i) => `第${i + 1}行：今日打卡进度 ${i + 1}/8 户`)
      const t0 = Date.now()
      assert.equal((await send(w.gw.url, { chat_id: 'r5@chatroom', text: lines.join('\n'), id: 7 })).status, 200)
      assert.deepEqual((await send(w.gw.url, { chat_id: 'r5@chatroom', text: lines.join('\n'), id: 7 })).body,
        { ok: true, duplicate: true })
      await until(() => w.gw.outbox.size === 0, 10000)
      assert.ok(w.roomGot.length >= 3)
      assert.deepEqual(w.roomGot.map(m => m.text).join('\n').split('\n'), lines)
      for (let i = 1; i < w.roomGot.length; i++) {
        const gap = w.roomGot[i].at - w.roomGot[i - 1].at
        assert.ok(gap >= 480, `gap ${gap} ms`)
      }
      assert.ok(Date.now() - t0 >= 480 * (w.roomGot.length - 1))
    } finally {
      await w.gw.stop()
      g.close()
    }
  })
})
