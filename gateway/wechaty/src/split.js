// Long texts are sent as several messages, cut between lines (a line longer than the limit is cut
// inside, at the limit). Lengths count characters (code points), not UTF-16 units.
export function splitText (text, maxChars = 1000) {
  const len = s => [...s].length
  if (len(text) <= maxChars) return [text]
  const parts = []
  let cur = ''
  const flush = () => { if (cur !== '') parts.push(cur.replace(/\n+$/, '')); cur = '' }
  for (const line of text.split('\n')) {
    let rest = line
    while (len(rest) > maxChars) {
      flush()
      const chars = [...rest]
      parts.push(chars.slice(0, maxChars).join(''))
      rest = chars.slice(maxChars).join('')
    }
    const joined = cur === '' ? rest : cur + '\n' + rest
    if (len(joined) > maxChars) {
      flush()
      cur = rest
    } else {
      cur = joined
    }
  }
  flush()
  return parts.filter(p => p.trim() !== '')
}
