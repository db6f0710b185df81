// Pacing for an ordinary WeChat account: at most `perChat` messages a minute to one conversation and
// `total` a minute overall. Each send reserves a gap of 60/rate seconds stretched by a random 0..jitter
// (so the rate is never exceeded and the rhythm is not machine-regular).
export class Pacer {
  constructor ({ perChat = 8, total = 20, jitter = 0.5, now = Date.now, random = Math.random } = {}) {
    this.perChatGap = 60000 / Math.max(perChat, 0.001)
    this.totalGap = 60000 / Math.max(total, 0.001)
    this.jitter = jitter
    this.now = now
    this.random = random
    this.next = new Map() // chat -> earliest next send (ms)
    this.nextAny = 0
  }

  readyAt (chat) {
    return Math.max(this.next.get(chat) ?? 0, this.nextAny)
  }

  take (chat) {
    const t = this.now()
    const stretch = () => 1 + this.random() * this.jitter
    this.next.set(chat, t + this.perChatGap * stretch())
    this.nextAny = t + this.totalGap * stretch()
    if (this.next.size > 5000) { // forget chats that are free again
      for (const [k, v] of this.next) if (v <= t) this.next.delete(k)
    }
  }
}
