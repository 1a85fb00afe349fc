'use strict'
// Secret-stream encrypt+decrypt throughput of the JS stack in one process, for the noise
// benchmark (noise/benches/secret_stream_throughput.rs runs it beside the Rust figures).
//
//   node secret-stream-bench.js <messageSize> <totalBytes> [<messageSize> <totalBytes> ...]
//
// Two @hyperswarm/secret-stream instances started from a fixed handshake (as hyperdht starts
// them) are joined through their in-memory raw streams: every write is framed and encrypted by
// one side and parsed and decrypted by the other. Prints one JSON line per size:
// {size, bytes, seconds, mbPerSec}.

const b4a = require('b4a')
const NoiseSecretStream = require('@hyperswarm/secret-stream')

function pair() {
  const hash = b4a.alloc(64, 1)
  const k1 = b4a.alloc(32, 2)
  const k2 = b4a.alloc(32, 3)
  const pk1 = b4a.alloc(32, 4)
  const pk2 = b4a.alloc(32, 5)
  const i = new NoiseSecretStream(true, null, {
    handshake: { tx: k1, rx: k2, hash, publicKey: pk1, remotePublicKey: pk2 }
  })
  const r = new NoiseSecretStream(false, null, {
    handshake: { tx: k2, rx: k1, hash, publicKey: pk2, remotePublicKey: pk1 }
  })
  i.rawStream.on('data', (d) => r.rawStream.write(d))
  r.rawStream.on('data', (d) => i.rawStream.write(d))
  return { i, r }
}

function run(size, total) {
  return new Promise((resolve) => {
    const { i, r } = pair()
    const msg = b4a.alloc(size, 0xaa)
    const count = Math.ceil(total / size)
    let received = 0
    let start = 0
    r.on('data', (d) => {
      received += d.byteLength
      if (received >= count * size) {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9
        i.destroy()
        r.destroy()
        resolve({ size, bytes: received, seconds, mbPerSec: received / seconds / 1e6 })
      }
    })
    let sent = 0
    const pump = () => {
      while (sent < count) {
        sent++
        if (!i.write(msg)) return i.once('drain', pump)
      }
    }
    start = process.hrtime.bigint()
    pump()
  })
}

async function main() {
  const args = process.argv.slice(2).map(Number)
  // warm-up so the JIT has compiled the hot paths
  await run(16384, 16 * 1024 * 1024)
  for (let k = 0; k + 1 < args.length; k += 2) {
    process.stdout.write(JSON.stringify(await run(args[k], args[k + 1])) + '\n')
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
