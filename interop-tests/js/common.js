'use strict'
// Helpers shared by our JS peer scripts. Every script prints JSON lines on stdout and exits
// when its stdin closes, so a test process that dies leaves no JS peer behind.

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// Calls `onclose` (then exits) when the parent closes our stdin.
function exitWithParent(onclose) {
  process.stdin.resume()
  process.stdin.on('end', async () => {
    try {
      if (onclose) await onclose()
    } finally {
      process.exit(0)
    }
  })
}

// Reads JSON lines from stdin and hands each parsed object to `handler`.
function onCommands(handler) {
  let buf = ''
  process.stdin.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (line.trim()) handler(JSON.parse(line))
    }
  })
}

module.exports = { out, exitWithParent, onCommands }
