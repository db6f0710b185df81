// An append-only, fsync'd journal of pending work, one JSON object a line:
//   {"add": key, "rec": {...}}   a new item (written and fsync'd before it is acknowledged)
//   {"done": key}                the item is finished (delivered, or dropped on purpose)
//   {"seen": [key, ...]}         keys finished before the last compaction, kept for deduplication
// On open the journal is replayed: items added and not done are pending again, in their order. A
// torn last line (a crash mid-write) is ignored. When enough items are done the journal is rewritten
// (a temporary file, fsync, rename, fsync of the folder), keeping what is pending and the recent keys;
// it is also rewritten shortly after it drains, so a delivered message's text does not stay on disk.
import fs from 'node:fs'
import path from 'node:path'

export class Spool {
  constructor (file, { keep = 10000, compactEvery = 500, lingerMs = 2000 } = {}) {
    this.file = file
    this.keep = keep
    this.compactEvery = compactEvery
    this.lingerMs = lingerMs
    this.timer = null
    this.pending = new Map() // key -> rec, in insertion order
    this.seen = new Map() // finished keys, oldest first (a Map keeps insertion order)
    this.fd = null
    this.doneSinceCompact = 0
  }

  open () {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 })
    if (fs.existsSync(this.file)) {
      for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
        if (!line) continue
        let e
        try { e = JSON.parse(line) } catch { continue }
        if (e.add !== undefined) {
          if (!this.seen.has(e.add)) this.pending.set(e.add, e.rec)
        } else if (e.done !== undefined) {
          this.pending.delete(e.done)
          this._remember(e.done)
        } else if (Array.isArray(e.seen)) {
          for (const k of e.seen) this._remember(k)
        }
      }
    }
    this._rewrite()
    return this
  }

  close () {
    clearTimeout(this.timer)
    if (this.fd !== null && this.doneSinceCompact > 0 && this.pending.size === 0) this._rewrite()
    if (this.fd !== null) fs.closeSync(this.fd)
    this.fd = null
  }

  /** Records an item durably; false if the key is pending or was finished recently (a duplicate). */
  add (key, rec) {
    if (this.has(key)) return false
    this._append({ add: key, rec })
    this.pending.set(key, rec)
    return true
  }

  has (key) {
    return this.pending.has(key) || this.seen.has(key)
  }

  done (key) {
    if (!this.pending.has(key)) return
    this._append({ done: key })
    this.pending.delete(key)
    this._remember(key)
    if (++this.doneSinceCompact >= this.compactEvery) this._rewrite()
    else if (this.pending.size === 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null
        if (this.fd !== null && this.pending.size === 0 && this.doneSinceCompact > 0) this._rewrite()
      }, this.lingerMs)
      this.timer.unref?.()
    }
  }

  /** Marks a key as seen without any work (e.g. a message refused at the door), so it stays a duplicate. */
  remember (key) {
    if (this.has(key)) return
    this._append({ done: key })
    this._remember(key)
  }

  get size () { return this.pending.size }

  /** The oldest pending [key, rec], or undefined. */
  first () { return this.pending.entries().next().value }

  entries () { return [...this.pending.entries()] }

  _remember (key) {
    this.seen.delete(key)
    this.seen.set(key, true)
    while (this.seen.size > this.keep) this.seen.delete(this.seen.keys().next().value)
  }

  _append (obj) {
    const buf = Buffer.from(JSON.stringify(obj) + '\n')
    let off = 0
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off)
    fs.fsyncSync(this.fd)
  }

  _rewrite () {
    const tmp = this.file + '.tmp'
    const lines = [JSON.stringify({ seen: [...this.seen.keys()] })]
    for (const [k, rec] of this.pending) lines.push(JSON.stringify({ add: k, rec }))
    const fd = fs.openSync(tmp, 'w', 0o600)
    fs.writeSync(fd, lines.join('\n') + '\n')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    if (this.fd !== null) fs.closeSync(this.fd)
    fs.renameSync(tmp, this.file)
    try {
      const dfd = fs.openSync(path.dirname(this.file), 'r')
      fs.fsyncSync(dfd)
      fs.closeSync(dfd)
    } catch { /* some filesystems cannot fsync a folder */ }
    this.fd = fs.openSync(this.file, 'a', 0o600)
    this.doneSinceCompact = 0
  }
}
