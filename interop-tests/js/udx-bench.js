'use strict'
// udxcat's twin on udx-native 1.21.3, for benchmarks (udx/bench/run.sh):
//   node udx-bench.js send --bind HOST:PORT --id N --peer HOST:PORT --peer-id M --bytes COUNT
//   node udx-bench.js recv --bind HOST:PORT --id N --peer HOST:PORT --peer-id M
// Data is one random 64 KiB block repeated (no hashing, as `udxcat --no-hash`). Prints
// {"bytes":B,"secs":S} on stderr at the end; exits 0 on a clean end.
const UDX = require('udx-native')
const crypto = require('crypto')

const argv = process.argv.slice(2)
const mode = argv[0]
const opt = (k) => { const i = argv.indexOf(k); return i === -1 ? null : argv[i + 1] }
const split = (a) => { const i = a.lastIndexOf(':'); return [a.slice(0, i), Number(a.slice(i + 1))] }
const [bhost, bport] = split(opt('--bind'))
const [phost, pport] = split(opt('--peer'))
const id = Number(opt('--id'))
const peerId = Number(opt('--peer-id'))

const udx = new UDX()
const socket = udx.createSocket()
socket.bind(bport, bhost)
const stream = udx.createStream(id)
stream.connect(socket, peerId, pport, phost)
let start = process.hrtime.bigint()
const report = (bytes) => process.stderr.write(JSON.stringify({ bytes, sha256: '', secs: Number(process.hrtime.bigint() - start) / 1e9 }) + '\n')
stream.on('error', (e) => { process.stderr.write('udx-bench: ' + e.message + '\n'); process.exit(1) })

if (mode === 'send') {
  const total = Number(opt('--bytes'))
  const block = crypto.randomBytes(65536)
  let sent = 0
  ;(async () => {
    while (sent < total) {
      const n = Math.min(block.length, total - sent)
      sent += n
      if (!stream.write(n === block.length ? block : block.subarray(0, n))) await new Promise((resolve) => stream.once('drain', resolve))
    }
    stream.end()
  })()
  stream.on('finish', () => { report(sent) })
  stream.on('close', () => { socket.close(); process.exit(0) })
  stream.resume()
} else {
  let bytes = 0
  let first = true
  stream.on('data', (d) => { if (first) { start = process.hrtime.bigint(); first = false } bytes += d.length })
  stream.on('end', () => { report(bytes); stream.end() })
  stream.on('close', () => { socket.close(); process.exit(0) })
}
