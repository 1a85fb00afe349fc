'use strict'
// One idle JS DHT node for benchmarks: argv[2] = 'hyperdht' (HyperDHT.bootstrapper) or
// 'dht-rpc' (plain dht-rpc bootstrapper), bound to 127.0.0.1:argv[3]. Prints {"port": N, "pid": P}.
const { out, exitWithParent } = require('./common')

async function main() {
  const kind = process.argv[2] || 'hyperdht'
  const DHT = kind === 'dht-rpc' ? require('dht-rpc') : require('hyperdht')
  const node = DHT.bootstrapper(Number(process.argv[3]), '127.0.0.1', { host: '127.0.0.1' })
  await node.fullyBootstrapped()
  exitWithParent(() => node.destroy())
  out({ port: node.address().port, pid: process.pid, id: node.id ? Buffer.from(node.id).toString('hex') : null })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
