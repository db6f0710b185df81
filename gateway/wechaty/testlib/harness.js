// Test harness: a real `gridbot serve` (SQLite in a temp dir, a small bridge roster), the fake WeCom API
// (tests/fakewecom.py) for the staff's app, and the gateway over wechaty-puppet-mock.
import { spawn, execFile } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = process.env.GRIDBOT_ROOT || path.resolve(here, '../../..')
export const PY = process.env.GRIDBOT_PYTHON || path.join(ROOT, '.venv/bin/python')
const GRIDBOT = ['-c', 'import sys; from bot.cli import main; sys.exit(main())']

export const SECRET = 'bridge-test-secret'
export const WECOM = { corp: 'wwfakecorp', agent: '1000002', secret: 'fake-secret', token: 'tok3n',
  aes: 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C' }
export const ROOM_ID = 'chengfeng-5haoyuan@chatroom'
export const ROOM_TOPIC = '成丰社区5号院'

// The roster: 5号院 is an ordinary WeChat group behind the bridge (its 群ID is the mock room's id);
// residents' 微信IDs are the mock contacts' ids; the staff are on the WeCom app (the fake).
export const RESIDENTS = [
  // 房号, 姓名, 微信ID, 类别, 隔离开始
  ['10', '孙丽', 'wxid_sunli', '常住', ''],
  ['11', '周建国', 'wxid_zhoujianguo', '常住', ''],
  ['12', '吴桂兰', 'wxid_wuguilan', '常住', ''],
  ['13', '郑志强', 'wxid_zhengzhiqiang', '常住', ''],
  ['14', '冯海燕', 'wxid_fenghaiyan', '常住', ''],
  ['15', '陈明', 'wxid_chenming', '居家隔离', 'QSTART'],
  ['16', '褚淑珍', 'wxid_chushuzhen', '常住', ''],
  ['17', '卫磊', 'wxid_weilei', '常住', ''],
]
const STAFF = [
  ['王芳', '网格员', '13900000001', 'wangfang', 'wecom', '成丰二网格'],
  ['李娜', '网格长', '13900000002', 'lina', 'wecom', '成丰二网格'],
  ['杨静', '医护', '13900000003', 'yangjing', 'wecom', '成丰二网格'],
  ['刘洋', '街道干部', '13900000004', 'liuyang', 'wecom', '天桥东街街道'],
  ['周强', '街道值班', '13900000005', 'zhouqiang', 'wecom', '天桥东街街道'],
]

function csv (rows) {
  return rows.map(r => r.map(c => /[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c).join(',')).join('\n') + '\n'
}

export function writeRoster (dir, quarantineStart) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, '楼栋.csv'), csv([
    ['街道', '社区', '网格', '楼栋', '群ID', '渠道'],
    ['天桥东街街道', '成丰社区', '成丰二网格', '5号院', ROOM_ID, 'bridge'],
  ]))
  fs.writeFileSync(path.join(dir, '工作人员.csv'), csv([['姓名', '角色', '手机', '微信ID', '渠道', '负责'], ...STAFF]))
  fs.writeFileSync(path.join(dir, '居民.csv'), csv([
    ['楼栋', '单元', '房号', '姓名', '手机', '微信ID', '渠道', '类别', '隔离开始', '包保干部', '包保民警', '包保医护'],
    ...RESIDENTS.map(([room, name, id, cat, q], i) => ['5号院', '', room, name, `1380000${String(1000 + i)}`, id, 'bridge',
      cat, q ? quarantineStart : '', q ? 'liuyang' : '', '', q ? 'yangjing' : '']),
  ]))
}

export async function freePort () {
  const srv = net.createServer()
  await new Promise(resolve => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address()
  await new Promise(resolve => srv.close(resolve))
  return port
}

export function tempDir () {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gridbot-gateway-'))
}

function pyEnv (extra = {}) {
  return { ...process.env, PYTHONPATH: ROOT, PYTHONUNBUFFERED: '1', ...extra }
}

/** Runs one gridbot command to completion. */
export async function gridbot (args, env, cwd) {
  try {
    const { stdout, stderr } = await promisify(execFile)(PY, [...GRIDBOT, ...args], { env: pyEnv(env), cwd, maxBuffer: 1 << 24 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(e) }
  }
}

function firstLine (child) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = d => {
      buf += d
      const i = buf.indexOf('\n')
      if (i >= 0) { child.stdout.off('data', onData); resolve(buf.slice(0, i)) }
    }
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', onData)
    child.once('exit', code => reject(new Error(`exited ${code} before answering`)))
  })
}

export async function startFakeWeCom () {
  const child = spawn(PY, [path.join(here, 'fakewecom_server.py'), WECOM.corp, WECOM.secret],
    { env: pyEnv(), stdio: ['pipe', 'pipe', 'inherit'] })
  const { base_url: url } = JSON.parse(await firstLine(child))
  return {
    url,
    async sends () { return (await fetch(`${url}/_test/sends`)).json() },
    async stop () {
      if (child.exitCode !== null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** `gridbot serve` on `port`; its log is kept in `.log` (and shown when GRIDBOT_LOG is set). */
export async function startGridbot ({ dir, port, env }) {
  const child = spawn(PY, [...GRIDBOT, 'serve', '--host', '127.0.0.1', '--port', String(port)],
    { env: pyEnv(env), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  const proc = { child, log: '', port, url: `http://127.0.0.1:${port}` }
  const keep = d => { proc.log += d; if (process.env.GRIDBOT_LOG) process.stderr.write(d) }
  child.stdout.setEncoding('utf8').on('data', keep)
  child.stderr.setEncoding('utf8').on('data', keep)
  const t0 = Date.now()
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gridbot serve exited ${child.exitCode}:\n${proc.log}`)
    try {
      const r = await fetch(`${proc.url}/healthz`)
      if (r.status < 500) break
    } catch { /* not listening yet */ }
    if (Date.now() - t0 > 60000) throw new Error(`gridbot serve did not come up:\n${proc.log}`)
    await sleep(100)
  }
  proc.stop = async () => {
    if (child.exitCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    const t = setTimeout(() => child.kill('SIGKILL'), 15000)
    await exited
    clearTimeout(t)
  }
  return proc
}

export async function waitFor (pred, { timeout = 20000, what = 'condition' } = {}) {
  const t0 = Date.now()
  for (;;) {
    const v = await pred()
    if (v) return v
    if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** Rows of a query on gridbot's SQLite database (read-only), as arrays. */
export async function sql (dbFile, query) {
  const code = 'import json,sqlite3,sys; c=sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True); ' +
    'print(json.dumps(c.execute(sys.argv[2]).fetchall(), ensure_ascii=False))'
  const { stdout } = await promisify(execFile)(PY, ['-c', code, dbFile, query])
  return JSON.parse(stdout)
}
