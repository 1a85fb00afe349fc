'use strict'
// Writes small seed corpora for the codec fuzz targets from the JS-generated vectors:
// fuzz/corpus/<target>/<vector-file>-<case>.bin. Run: node fuzz/seed-corpus.js
const fs = require('fs')
const path = require('path')

const vectors = path.join(__dirname, '..', 'fixtures', 'vectors')
const corpus = path.join(__dirname, 'corpus')
const map = {
  rpc_message: ['rpc/request', 'rpc/response', 'rpc/internal_commands', 'rpc/invalid'],
  peer: ['hyperdht/peer'],
  lookup_raw_reply: ['hyperdht/lookup_raw_reply', 'hyperdht/lookup_raw_reply_without_bump'],
  announce: ['hyperdht/announce'],
  handshake: ['hyperdht/handshake'],
  holepunch: ['hyperdht/holepunch'],
  noise_payload: ['hyperdht/noise_payload', 'hyperdht/noise_payload_unknown_version'],
  holepunch_payload: ['hyperdht/holepunch_payload'],
  mutable_signable: ['hyperdht/mutable_signable'],
  mutable_put_request: ['hyperdht/mutable_put_request'],
  mutable_get_response: ['hyperdht/mutable_get_response'],
  plugin_request: ['hyperdht/plugin_request'],
  primitives: ['codec/primitives']
}
for (const [target, files] of Object.entries(map)) {
  const dir = path.join(corpus, target)
  fs.mkdirSync(dir, { recursive: true })
  for (const f of files) {
    const doc = JSON.parse(fs.readFileSync(path.join(vectors, f + '.json'), 'utf8'))
    const cases = [...(doc.cases || []), ...(doc.invalid || [])]
    cases.forEach((c, i) => {
      if (i % 3 !== 0 && cases.length > 12) return // keep seeds small
      let buf = Buffer.from(c.hex, 'hex')
      if (target === 'primitives') buf = Buffer.concat([Buffer.from([i % 8]), buf])
      fs.writeFileSync(path.join(dir, `${path.basename(f)}-${i}.bin`), buf)
    })
  }
}
