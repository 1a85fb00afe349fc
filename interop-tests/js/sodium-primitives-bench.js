'use strict'
// Single-core speed of the libsodium primitives under JS secret-stream (through sodium-native):
// ChaCha20 (IETF) keystream XOR and Poly1305, in GB/s per message size. The Rust counterparts
// are the ignored `throughput` tests in noise/src/chacha.rs and noise/src/poly1305.rs.
//
//   node sodium-primitives-bench.js

const sodium = require('sodium-native')

for (const size of [1024, 4096, 16384, 65536, 1 << 20]) {
  const buf = Buffer.alloc(size)
  const nonce = Buffer.alloc(12)
  const key = Buffer.alloc(32, 1)
  const tag = Buffer.alloc(16)
  const iters = Math.max(1, (256 << 20) / size)
  const best = (fn) => {
    let top = 0
    for (let r = 0; r < 3; r++) {
      const t = process.hrtime.bigint()
      for (let i = 0; i < iters; i++) fn()
      top = Math.max(top, (iters * size) / Number(process.hrtime.bigint() - t))
    }
    return top.toFixed(2)
  }
  const chacha = best(() => sodium.crypto_stream_chacha20_ietf_xor(buf, buf, nonce, key))
  const poly = best(() => sodium.crypto_onetimeauth(tag, buf, key))
  console.log(JSON.stringify({ size, chachaGBps: Number(chacha), poly1305GBps: Number(poly) }))
}
