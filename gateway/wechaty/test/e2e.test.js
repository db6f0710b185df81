// End to end: residents of 5号院 (a mock WeChat room, wechaty-puppet-mock) → the gateway → a real
// `gridbot serve` (SQLite, the bridge configured, the staff on the WeCom app faked by tests/fakewecom.py)
// → back through the gateway into the mock, and to the worker at the fake WeCom API. The tests share
// one world and run in order, like one morning in the room; the last one prints that morning.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { sign } from '../src/sign.js'
import { SECRET, gridbot, waitFor } from '../testlib/harness.js'
import { makeWorld } from '../testlib/world.js'


let w

before(async () => { w = await makeWorld() })
after(async () => { await w?.close() })

const unreported = async () => (await w.ledger()).grids[0].unreported
const privateTo = (id, re) => w.privateGot.filter(m => m.to === id && re.test(m.text))

test('the morning prompt reaches the room through the gateway', async () => {
  const r = await gridbot(['jobs', 'run', 'daily-prompt'], w.env, w.dir)
  assert.equal(r.code, 0, r.stderr)
  await waitFor(() => w.roomGot.some(m => /早上好/.test(m.text)), { what: 'the morning prompt in the room' })
})

test('a fever written in the room reaches the grid worker at the fake WeCom API', async () => {
  w.say('wxid_chenming', '我发烧了38.5度，还咳嗽')
  const [alert] = await waitFor(async () => {
    const got = await w.workerGot('wangfang')
    return got.length ? got : null
  }, { what: "the grid worker's alert" })
  const text = alert.body.text.content
  assert.match(text, /发热预警/)
  assert.match(text, /5-15 陈明/)
  assert.match(text, /38\.5/)
  assert.match(text, /居家隔离 第5天\/共14天/)
  // the resident is answered privately; the room hears only a neutral notice, never the health details
  await waitFor(() => privateTo('wxid_chenming', /38\.5/).length, { what: "the resident's acknowledgement" })
  assert.ok(!w.roomGot.some(m => /38\.5|发烧|咳嗽|陈明/.test(m.text)), 'no health details in the group')
})

test('a safe report gets the resident a private confirmation in the mock', async () => {
  const t0 = Date.now()
  w.say('wxid_sunli', '5-10 36.5 正常')
  const [m] = await waitFor(() => { const g = privateTo('wxid_sunli', /已记录/); return g.length ? g : null },
    { what: 'the private confirmation' })
  assert.match(m.text, /5-10/)
  assert.ok(!(await unreported()).includes('5-10'))
  await sleep(300)
  assert.ok(!w.roomGot.some(m => m.at >= t0 && /5-10|孙丽/.test(m.text)), 'the confirmation is private')
  assert.equal((await w.workerGot('wangfang')).filter(s => /5-10/.test(s.body.text.content)).length, 0,
    'a safe report escalates nothing')
})

const NOTE = '#接龙\n5号院今日健康打卡\n例：5-10 36.5 正常\n\n1. 5-11 周建国 36.5 正常\n2. 5-12 吴桂兰 36.4 正常\n3. 5-14 冯海燕 全家正常'

test('a GroupNote (接龙) reaches gridbot as one jielong event with the list as its text', async () => {
  const id = w.groupNote('wxid_zhoujianguo', NOTE)
  w.jielongId = id
  const row = await waitFor(async () => (await w.inboxRows()).find(r => r[0] === id), { what: 'the jielong event in the inbox' })
  assert.deepEqual(row, [id, 'wxid_zhoujianguo', NOTE])
})

test('a GroupNote (接龙) list records every household in it', async () => {
  await waitFor(async () => {
    const u = await unreported()
    return !['5-11', '5-12', '5-14'].some(h => u.includes(h))
  }, { timeout: 8000, what: '5-11, 5-12 and 5-14 in the ledger' })
})

test('a recall undoes the check-in', async () => {
  const id = w.say('wxid_zhengzhiqiang', '5-13 36.6 正常')
  await waitFor(async () => !(await unreported()).includes('5-13'), { what: '5-13 checked in' })
  w.recall('wxid_zhengzhiqiang', id)
  const rows = await waitFor(async () => (await w.inboxRows()).filter(r => r[1] === 'wxid_zhengzhiqiang'),
    { what: 'the recall event in the inbox' })
  assert.ok(rows.length >= 1)
  await waitFor(async () => (await unreported()).includes('5-13'), { timeout: 8000, what: '5-13 unreported again' })
})

test('gridbot stopped mid-way: events wait in the spool and arrive after it restarts, once each', async () => {
  await w.gridbot.stop()
  w.oldLogs = (w.oldLogs ?? '') + w.gridbot.log
  const a = w.say('wxid_chushuzhen', '5-16 36.4 正常')
  const b = w.say('wxid_weilei', '5-17 36.7 一切正常')
  await waitFor(() => w.gateway.inbox.size >= 2 && w.gatewayLog.some(l => /gridbot not taking events/.test(l)),
    { what: 'the events spooled and retried' })
  await sleep(1500) // a few retries against the closed port
  const spoolFile = path.join(w.dir, 'spool', 'events.jsonl')
  const onDisk = fs.readFileSync(spoolFile, 'utf8')
  assert.ok(onDisk.includes(a) && onDisk.includes(b), 'the pending events are on disk')
  await w.restartGridbot()
  await waitFor(() => w.gateway.inbox.size === 0, { what: 'the spool drained' })
  await waitFor(() => privateTo('wxid_chushuzhen', /已记录/).length && privateTo('wxid_weilei', /已记录/).length,
    { what: 'both confirmations' })
  await sleep(1500) // time for a wrongly doubled event to show itself
  const rows = (await w.inboxRows()).filter(r => r[0] === a || r[0] === b)
  assert.equal(rows.length, 2)
  assert.equal(privateTo('wxid_chushuzhen', /已记录/).length, 1)
  assert.equal(privateTo('wxid_weilei', /已记录/).length, 1)
  const u = await unreported()
  assert.ok(!u.includes('5-16') && !u.includes('5-17'))
})

test('a forged or stale send to the gateway is refused with 403; a genuine one is said once', async () => {
  const body = Buffer.from(JSON.stringify({ chat_id: '', user_id: 'wxid_sunli', text: '转账给我', id: 'forged-1' }))
  const now = String(Math.floor(Date.now() / 1000))
  const post = (b, headers) => fetch(w.gateway.url, { method: 'POST', body: b, headers: { 'Content-Type': 'application/json', ...headers } })
  let r = await post(body, { 'X-Gridbot-Timestamp': now, 'X-Gridbot-Signature': sign('not-the-secret', now, body) })
  assert.equal(r.status, 403)
  r = await post(body, {})
  assert.equal(r.status, 403)
  const old = String(Math.floor(Date.now() / 1000) - 301)
  r = await post(body, { 'X-Gridbot-Timestamp': old, 'X-Gridbot-Signature': sign(SECRET, old, body) })
  assert.equal(r.status, 403, 'outside the 300 s window')
  const tampered = Buffer.from(body.toString().replace('转账给我', '转账给他'))
  r = await post(tampered, { 'X-Gridbot-Timestamp': now, 'X-Gridbot-Signature': sign(SECRET, now, body) })
  assert.equal(r.status, 403)
  await sleep(300)
  assert.ok(!w.privateGot.some(m => /转账/.test(m.text)), 'nothing forged was said')

  const genuine = Buffer.from(JSON.stringify({ chat_id: '', user_id: 'wxid_sunli', text: '测试消息', id: 'g-1' }))
  for (let i = 0; i < 2; i++) {
    const ts = String(Math.floor(Date.now() / 1000))
    r = await post(genuine, { 'X-Gridbot-Timestamp': ts, 'X-Gridbot-Signature': sign(SECRET, ts, genuine) })
    assert.equal(r.status, 200)
    assert.equal((await r.json()).duplicate, i === 1)
  }
  await waitFor(() => privateTo('wxid_sunli', /测试消息/).length, { what: 'the genuine send' })
  await sleep(300)
  assert.equal(privateTo('wxid_sunli', /测试消息/).length, 1)

  // a room outside GATEWAY_ROOMS is refused too (permanent for gridbot: 4xx)
  const other = Buffer.from(JSON.stringify({ chat_id: 'family@chatroom', text: '通知', id: 'g-2' }))
  const ts = String(Math.floor(Date.now() / 1000))
  r = await post(other, { 'X-Gridbot-Timestamp': ts, 'X-Gridbot-Signature': sign(SECRET, ts, other) })
  assert.equal(r.status, 403)
})

test("the gateway's log has no message text and no phone number", () => {
  const log = w.gatewayLog.join('\n')
  assert.ok(w.gatewayLog.length > 10)
  for (const e of w.events) {
    for (const line of String(e.text).split('\n')) {
      if (line.trim().length >= 4 && !line.startsWith('mockmsg-')) assert.ok(!log.includes(line), `logged: ${line}`)
    }
  }
  for (const m of [...w.roomGot, ...w.privateGot]) assert.ok(!log.includes(m.text.slice(0, 12)))
  assert.doesNotMatch(log, /1[3-9]\d{9}/)
  assert.doesNotMatch(log, /[\u4e00-\u9fff]/, 'no Chinese text at all: names, topics and messages stay out')
})

test('transcript of the morning in 5号院', async t => {
  const names = Object.fromEntries(Object.values(w.people).map(c => [c.id, c.payload.name]))
  const lines = []
  const hhmmss = at => new Date(at + 8 * 3600e3).toISOString().slice(11, 23)
  const quote = s => s.replace(/\n/g, ' ⏎ ')
  for (const e of w.events) {
    lines.push([e.at, `${hhmmss(e.at)}  room ← ${names[e.who]} (${e.type}): ${quote(e.text)}`])
  }
  for (const m of w.roomGot) lines.push([m.at, `${hhmmss(m.at)}  room → (bot in the group): ${quote(m.text)}`])
  for (const m of w.privateGot) lines.push([m.at, `${hhmmss(m.at)}  private → ${names[m.to]}: ${quote(m.text)}`])
  for (const s of await w.wecom.sends()) {
    const at = s.at * 1000
    lines.push([at, `${hhmmss(at)}  WeCom app → ${s.body.touser}: ${quote(s.body.text?.content ?? JSON.stringify(s.body))}`])
  }
  const gl = ((w.oldLogs ?? '') + w.gridbot.log).split('\n')
  for (const l of gl) {
    // gridbot logs in its own time zone with the offset shown ("2026-02-10 08:00:01,234 +0800 INFO …")
    const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})(?: ([+-]\d\d)(\d\d))? \w+ (handlers\.\S+|bot\.channels\.bridge): (.*)$/.exec(l)
    if (m) {
      const zone = m[3] ? `${m[3]}:${m[4]}` : 'Z'
      const at = Date.parse(m[1].replace(' ', 'T') + '.' + m[2] + zone)
      lines.push([at, `${hhmmss(at)}  gridbot: ${m[5]}: ${m[6]}`])
    }
  }
  for (const l of w.gatewayLog) {
    const m = /^(\S+Z) \w+ (gridbot not taking events|gridbot reachable again).*/.exec(l)
    if (m) lines.push([Date.parse(m[1]), `${hhmmss(Date.parse(m[1]))}  gateway: ${l.slice(m[1].length + 1)}`])
  }
  lines.sort((x, y) => x[0] - y[0])
  const text = lines.map(l => l[1]).join('\n')
  if (process.env.GATEWAY_TRANSCRIPT) fs.writeFileSync(process.env.GATEWAY_TRANSCRIPT, text + '\n')
  for (const l of text.split('\n')) t.diagnostic(l)
  assert.ok(lines.length > 10)
})
