'use strict'
// A udx-native 1.21.3 peer driven by the Rust interop tests (interop-tests/tests/udx_*.rs).
// argv[2]: JSON {"id": N}. Prints JSON lines (events) on stdout; takes JSON commands on stdin:
//   {"cmd":"connect","remoteId":M,"port":P}   connect the stream to 127.0.0.1:P, stream id M
//   {"cmd":"send","bytes":B}                  write B random bytes, then end(); reports sha256
//   {"cmd":"message","data":HEX}              stream.send (unreliable MESSAGE)
//   {"cmd":"socket-send","data":HEX,"port":P} raw datagram from the socket
//   {"cmd":"end"} / {"cmd":"destroy"}
const UDX = require('udx-native')
const crypto = require('crypto')
const { out, exitWithParent, onCommands } = require('./common')

const cfg = JSON.parse(process.argv[2] || '{}')
const udx = new UDX()
const socket = udx.createSocket()
socket.bind(cfg.port || 0, '127.0.0.1')
socket.on('message', (buf, rinfo) => out({ event: 'socket-message', data: buf.toString('hex'), port: rinfo.port }))

const stream = udx.createStream(cfg.id)
const hash = crypto.createHash('sha256')
let bytes = 0
let endOnEnd = cfg.endOnEnd !== false
stream.on('data', (d) => {
  if (cfg.hash !== false) hash.update(d)
  bytes += d.length
})
stream.on('end', () => {
  out({ event: 'end', bytes, sha256: cfg.hash !== false ? hash.digest('hex') : '' })
  if (endOnEnd) stream.end()
})
stream.on('finish', () => out({ event: 'finish' }))
stream.on('message', (m) => out({ event: 'message', data: m.toString('hex') }))
stream.on('error', (e) => out({ event: 'error', code: e.code || null, message: e.message }))
stream.on('close', () => out({ event: 'close' }))

out({ event: 'listening', port: socket.address().port })

async function send(total) {
  const h = crypto.createHash('sha256')
  let sent = 0
  const start = process.hrtime.bigint()
  const block = cfg.hash === false ? crypto.randomBytes(65536) : null
  while (sent < total) {
    const n = Math.min(65536, total - sent)
    const b = block ? block.subarray(0, n) : crypto.randomBytes(n)
    if (!block) h.update(b)
    sent += n
    if (!stream.write(b)) await new Promise((resolve) => stream.once('drain', resolve))
  }
  stream.end()
  out({ event: 'sent', bytes: sent, sha256: block ? '' : h.digest('hex'), secs: Number(process.hrtime.bigint() - start) / 1e9 })
}

onCommands((c) => {
  if (c.cmd === 'connect') {
    stream.connect(socket, c.remoteId, c.port, '127.0.0.1')
    out({ event: 'connected' })
  } else if (c.cmd === 'send') {
    send(c.bytes).catch((e) => out({ event: 'error', message: e.message }))
  } else if (c.cmd === 'message') {
    stream.send(Buffer.from(c.data, 'hex'))
  } else if (c.cmd === 'socket-send') {
    socket.send(Buffer.from(c.data, 'hex'), c.port, '127.0.0.1')
  } else if (c.cmd === 'end') {
    stream.end()
  } else if (c.cmd === 'no-auto-end') {
    endOnEnd = false
  } else if (c.cmd === 'destroy') {
    stream.destroy()
  }
})

exitWithParent(() => socket.close())
