'use strict'
// One JS dht-rpc node (hyperdht, default options, 127.0.0.1) bootstrapped from argv[2]
// (host:port) that runs probes against other nodes on command:
// {id, cmd: 'checkFirewall'} -> {firewalled} (dht-rpc's own _checkIfFirewalled: PING_NAT to the
//   5 most recent nodes, which must answer on our port from their address);
// {id, cmd: 'delayedPing', host, port, ms} -> {ok, elapsed};
// {id, cmd: 'request', host, port, command, target} -> {error, closer, token}.
const DHT = require('hyperdht')
const { out, exitWithParent, onCommands } = require('./common')

async function main() {
  const [host, port] = process.argv[2].split(':')
  const dht = new DHT({ host: '127.0.0.1', bootstrap: [{ host, port: Number(port) }] })
  exitWithParent(() => dht.destroy())
  await dht.fullyBootstrapped()
  out({ ready: true, port: dht.address().port, table: dht.toArray().map((n) => n.port) })
  onCommands(async (c) => {
    try {
      if (c.cmd === 'checkFirewall') {
        const firewalled = await dht._checkIfFirewalled()
        return out({ id: c.id, firewalled })
      }
      if (c.cmd === 'delayedPing') {
        const t = Date.now()
        await dht.delayedPing({ host: c.host, port: c.port }, c.ms)
        return out({ id: c.id, ok: true, elapsed: Date.now() - t })
      }
      if (c.cmd === 'request') {
        const res = await dht.request(
          { command: c.command, target: c.target ? Buffer.from(c.target, 'hex') : null },
          { host: c.host, port: c.port }
        )
        return out({
          id: c.id,
          error: res.error,
          closer: (res.closerNodes || []).length,
          token: !!res.token
        })
      }
      out({ id: c.id, error: 'unknown cmd' })
    } catch (err) {
      out({ id: c.id, failed: String(err && err.message) })
    }
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
