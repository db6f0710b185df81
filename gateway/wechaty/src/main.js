#!/usr/bin/env node
// npm start: the gateway over the puppet named by WECHATY_PUPPET (Wechaty's own convention; the token of
// wechaty-puppet-service in WECHATY_PUPPET_SERVICE_TOKEN), relaying to gridbot at GRIDBOT_EVENTS_URL.
import { createGateway } from './gateway.js'
import { makeLogger } from './log.js'

const env = process.env
const log = makeLogger()
const need = ['GRIDBOT_EVENTS_URL', 'GRIDBOT_BRIDGE_SECRET'].filter(k => !env[k])
if (need.length) {
  log.error({ msg: `set ${need.join(' and ')} (see the README, "Ordinary WeChat groups")` })
  process.exit(2)
}
const num = (k, d) => (env[k] ? Number(env[k]) : d)
const puppet = env.WECHATY_PUPPET || 'wechaty-puppet-service'
const puppetOptions = env.WECHATY_PUPPET_SERVICE_TOKEN ? { token: env.WECHATY_PUPPET_SERVICE_TOKEN } : undefined

const gw = createGateway({
  puppet,
  puppetOptions,
  eventsUrl: env.GRIDBOT_EVENTS_URL,
  secret: env.GRIDBOT_BRIDGE_SECRET,
  listen: env.GATEWAY_LISTEN || '127.0.0.1:8090',
  rooms: env.GATEWAY_ROOMS,
  ratePerMinute: num('GATEWAY_RATE', 8),
  totalPerMinute: num('GATEWAY_RATE_TOTAL', 20),
  spoolDir: env.GATEWAY_SPOOL || 'spool',
  name: env.GATEWAY_NAME || 'gridbot-gateway',
  logger: log,
})

let stopping = false
async function shutdown (sig) {
  if (stopping) return
  stopping = true
  log.info({ msg: 'stopping', signal: sig })
  const force = setTimeout(() => process.exit(1), 15000)
  force.unref()
  try { await gw.stop() } finally { process.exit(0) }
}
process.on('SIGINT', () => shutdown('SIGINT'))
process.on('SIGTERM', () => shutdown('SIGTERM'))

await gw.start()
log.info({ msg: 'puppet', name: puppet })
