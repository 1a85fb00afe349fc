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

// Connect-layer targets (vectors from fixtures/gen/connect.js and fixtures/gen/protomux.js).
const put = (target, name, buf) => {
  const dir = path.join(corpus, target)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, name + '.bin'), buf)
}
const load = (f) => JSON.parse(fs.readFileSync(path.join(vectors, f + '.json'), 'utf8'))
const hexes = (doc, keys) => keys.flatMap((k) => (doc[k] || []).map((c) => c.hex))
{
  const addr = load('hyperdht/hyperdht_address')
  hexes(addr, ['cases', 'lenient']).forEach((h, i) => put('hyperdht_address', `hyperdht_address-${i}`, Buffer.from(h, 'hex')))
  const frames = load('protomux/frames')
  hexes(frames, ['cases', 'lenient', 'invalid']).forEach((h, i) => put('protomux_frame', `frames-${i}`, Buffer.from(h, 'hex')))
  const msgs = load('blind_relay/messages')
  for (const k of ['cases', 'lenient', 'invalid']) {
    msgs[k].forEach((c, i) => put(c.message === 'unpair' ? 'blind_relay_unpair' : 'blind_relay_pair', `messages-${k}-${i}`, Buffer.from(c.hex, 'hex')))
  }
  const sp = load('hyperdht/secure_payload')
  hexes(sp, ['cases', 'invalid', 'lenient']).forEach((h, i) => put('secure_payload', `sealed-${i}`, Buffer.from(h, 'hex')))
  sp.cases.forEach((c, i) => put('secure_payload', `plaintext-${i}`, Buffer.from(c.plaintext, 'hex')))
  const nw = load('hyperdht/noise_wrap')
  nw.cases.forEach((c, i) => {
    put('noise_wrap', `msg1-${i}`, Buffer.concat([Buffer.from([0]), Buffer.from(c.msg1, 'hex')]))
    put('noise_wrap', `payload-${i}`, Buffer.concat([Buffer.from([1]), Buffer.from(c.payload2.hex, 'hex')]))
    put('noise_wrap', `msg2-${i}`, Buffer.concat([Buffer.from([2]), Buffer.from(c.msg2, 'hex')]))
  })
  // Operation scripts (see dht/src/fuzzing/connect.rs): op byte, argument byte, ...
  put('protomux_ops', 'open-both-deliver-send-close', Buffer.from('0009' + '0109' + '0d00' + '0c00' + '0201' + '03020a' + '0d00' + '0600' + '0c00' + '0d00', 'hex'))
  put('protomux_ops', 'pair-then-open-accept', Buffer.from('0a01' + '0101' + '0c00' + '01' + '0201' + '0405' + '0d00', 'hex'))
  put('protomux_ops', 'cork-batch-inject', Buffer.from('0800' + '0001' + '0200' + '0401' + '0800' + '0d00' + '0f05' + '0000000000', 'hex'))
  put('blind_relay_ops', 'pair-match-unpair', Buffer.from('0018' + '0011' + '0210' + '0318' + '0508', 'hex'))
  put('blind_relay_ops', 'pending-close', Buffer.from('0028' + '0301' + '0021' + '0429', 'hex'))
}
