// One mock WeChat world wired to a real gridbot: the fake WeCom API, `gridbot serve`, the gateway over
// wechaty-puppet-mock, a mock room (5号院) with the roster's residents in it, and a record of what
// everyone received.
import path from 'node:path'
import { PuppetMock, mock } from 'wechaty-puppet-mock'
import * as PUPPET from 'wechaty-puppet'

import { createGateway } from '../src/gateway.js'
import { makeLogger } from '../src/log.js'
import {
  RESIDENTS, ROOM_ID, ROOM_TOPIC, SECRET, WECOM, freePort, gridbot, startFakeWeCom, startGridbot, tempDir,
  writeRoster,
} from './harness.js'

function shanghaiDate (offsetDays = 0) {
  const d = new Date(Date.now() + 8 * 3600e3 + offsetDays * 86400e3)
  return d.toISOString().slice(0, 10)
}

export async function makeWorld () {
  const dir = tempDir()
  const dbFile = path.join(dir, 'gridbot.db')
  const w = { dir, dbFile, gatewayLog: [], events: [], roomGot: [], privateGot: [] }
  w.today = shanghaiDate()
  const baseEnv = { GRIDBOT_DATABASE_URL: `sqlite+aiosqlite:///${dbFile}` }
  writeRoster(path.join(dir, 'roster'), shanghaiDate(-4))
  for (const args of [['init'], ['import', path.join(dir, 'roster'), '--no-progress']]) {
    const r = await gridbot(args, baseEnv, dir)
    if (r.code !== 0) throw new Error(`gridbot ${args[0]} failed:\n${r.stdout}\n${r.stderr}`)
  }
  w.wecom = await startFakeWeCom()

  // the gateway first: gridbot needs its send URL
  const port = await freePort()
  w.mocker = new mock.Mocker()
  w.puppet = new PuppetMock({ mocker: w.mocker })
  w.gateway = createGateway({
    puppet: w.puppet,
    eventsUrl: `http://127.0.0.1:${port}/bridge/events`,
    secret: SECRET,
    listen: '127.0.0.1:0',
    ratePerMinute: 600,
    totalPerMinute: 1200,
    spoolDir: path.join(dir, 'spool'),
    rooms: [ROOM_ID],
    retryBaseMs: 100,
    retryMaxMs: 800,
    name: 'gateway-test',
    logger: makeLogger(line => { w.gatewayLog.push(line); if (process.env.GATEWAY_LOG) process.stderr.write(line + '\n') }),
  })
  await w.gateway.start()
  w.me = w.mocker.createContact({ id: 'wxid_gridbot_gateway', name: '成丰社区网格助手' })
  w.mocker.login(w.me)
  w.people = Object.fromEntries(RESIDENTS.map(([room, name, id]) => [id, w.mocker.createContact({ id, name })]))
  w.room = w.mocker.createRoom({ id: ROOM_ID, topic: ROOM_TOPIC, memberIdList: [w.me.id, ...Object.keys(w.people)] })
  w.room.on('message', m => { if (m.payload.talkerId === w.me.id) w.roomGot.push({ text: m.text(), at: Date.now() }) })
  for (const c of Object.values(w.people)) {
    c.on('message', m => {
      if (m.payload.talkerId === w.me.id && m.payload.listenerId === c.id) w.privateGot.push({ to: c.id, text: m.text(), at: Date.now() })
    })
  }

  w.env = {
    ...baseEnv,
    GRIDBOT_BRIDGE_SECRET: SECRET,
    GRIDBOT_BRIDGE_SEND_URL: w.gateway.url,
    GRIDBOT_BRIDGE_RATE: '600',
    // every check-in confirmed privately, so the tests can see a safe report arrive (a district's
    // default is GRIDBOT_CONFIRM=abnormal)
    GRIDBOT_CONFIRM: 'all',
    GRIDBOT_BRIDGE_BOT_ID: w.me.id,
    GRIDBOT_WECOM_API_BASE: w.wecom.url,
    GRIDBOT_WECOM_CORP_ID: WECOM.corp,
    GRIDBOT_WECOM_AGENT_ID: WECOM.agent,
    GRIDBOT_WECOM_SECRET: WECOM.secret,
    GRIDBOT_WECOM_TOKEN: WECOM.token,
    GRIDBOT_WECOM_AES_KEY: WECOM.aes,
  }
  w.port = port
  w.gridbot = await startGridbot({ dir, port, env: w.env })

  w.restartGridbot = async () => { w.gridbot = await startGridbot({ dir, port, env: w.env }) }

  /** A resident writes in the room; returns the message id. */
  w.say = (who, text) => sayIn(w, who, PUPPET.types.Message.Text, text)
  w.groupNote = (who, text) => sayIn(w, who, PUPPET.types.Message.GroupNote, text)
  /** WeChat's "撤回": a Recalled message whose text is the recalled message's id (Message.toRecalled). */
  w.recall = (who, msgId) => sayIn(w, who, PUPPET.types.Message.Recalled, msgId)
  w.ledger = async () => {
    const r = await gridbot(['ledger', '--json'], baseEnv, dir)
    if (r.code !== 0) throw new Error(`gridbot ledger failed: ${r.stderr}`)
    return JSON.parse(r.stdout)
  }
  w.workerGot = async who => (await w.wecom.sends()).filter(s => String(s.body.touser ?? '').split('|').includes(who))
  w.inboxRows = () => import('./harness.js').then(h => h.sql(dbFile,
    "select msg_id, sender_id, text from inbound_messages where channel = 'bridge' order by id"))

  w.close = async () => {
    await w.gateway.stop().catch(() => {})
    await w.gridbot.stop().catch(() => {})
    await w.wecom.stop().catch(() => {})
  }
  return w
}

let seq = 0
function sayIn (w, who, type, text) {
  // The mock's own way of making a message (what ContactMock.say().to() does), with the type set:
  // the mock's say() can only make Text and file messages.
  const id = `mockmsg-${process.pid}-${++seq}`
  const msg = w.mocker.MessageMock.create({
    id, talkerId: who, roomId: ROOM_ID, mentionIdList: [], timestamp: Date.now(), type, text,
  })
  w.events.push({ id, who, type: PUPPET.types.Message[type], text, at: Date.now() })
  w.puppet.emit('message', { messageId: msg.id })
  return id
}
