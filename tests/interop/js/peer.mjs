#!/usr/bin/env node
// js-libp2p 2.x test peer for RoomVerse interop tests, driven by tests/interop/jspeer.py.
//
// stdout: one JSON object per line (events). stdin: one JSON command per line.
// Diagnostics go to stderr only, so stdout stays machine-readable.
//
// Options:
//   --listen ADDR        listen multiaddr (repeatable; default /ip4/0.0.0.0/tcp/0)
//   --topic T            topic to subscribe at start (repeatable;
//                        default roomverse/1/actions and roomverse/1/contexts)
//   --no-mdns            disable mDNS discovery
//   --mdns-interval MS   mDNS query interval (default 1000)
//   --muxer NAME         stream muxers in preference order, repeatable: yamux, mplex
//                        (default: yamux then mplex)
//   --no-autodial        do not dial peers found by discovery
//
// Commands:
//   {"cmd":"dial","addr":MULTIADDR}
//   {"cmd":"publish","topic":T,"data_b64":B}
//   {"cmd":"subscribe","topic":T} / {"cmd":"unsubscribe","topic":T}
//   {"cmd":"ping","peer_id":ID} or {"cmd":"ping","addr":MULTIADDR} -> {"event":"pong","rtt_ms":N}
//   {"cmd":"peers"}  -> {"event":"peers","connections":[...],"topics":{T:[peer ids]}}
//   {"cmd":"stop"}

// Node 20 has no Promise.withResolvers (added in Node 22); js-libp2p 2.x uses it.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { mplex } = await import('@libp2p/mplex')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { mdns } = await import('@libp2p/mdns')
const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromString } = await import('@libp2p/peer-id')
const readline = await import('node:readline')

function parseArgs (argv) {
  const opts = {
    listen: [],
    topics: [],
    mdns: true,
    mdnsInterval: 1000,
    muxers: [],
    autodial: true
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`)
      return argv[++i]
    }
    switch (a) {
      case '--listen': opts.listen.push(next()); break
      case '--topic': opts.topics.push(next()); break
      case '--no-mdns': opts.mdns = false; break
      case '--mdns-interval': opts.mdnsInterval = Number(next()); break
      case '--muxer': opts.muxers.push(next()); break
      case '--no-autodial': opts.autodial = false; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (opts.listen.length === 0) opts.listen.push('/ip4/0.0.0.0/tcp/0')
  if (opts.topics.length === 0) opts.topics.push('roomverse/1/actions', 'roomverse/1/contexts')
  if (opts.muxers.length === 0) opts.muxers.push('yamux', 'mplex')
  return opts
}

function emit (obj) {
  // stdout to a pipe is synchronous on Linux, so each line is flushed as written.
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function log (...args) {
  process.stderr.write(`[jspeer] ${args.join(' ')}\n`)
}

let opts
try {
  opts = parseArgs(process.argv.slice(2))
} catch (err) {
  emit({ event: 'error', error: String(err.message ?? err) })
  process.exit(2)
}

const muxerFactories = {
  yamux: () => yamux(),
  mplex: () => mplex()
}
const streamMuxers = opts.muxers.map((name) => {
  const f = muxerFactories[name]
  if (f == null) {
    emit({ event: 'error', error: `unknown muxer ${name}` })
    process.exit(2)
  }
  return f()
})

const node = await createLibp2p({
  addresses: { listen: opts.listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers,
  peerDiscovery: opts.mdns ? [mdns({ interval: opts.mdnsInterval })] : [],
  services: {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictSign',
      allowPublishToZeroTopicPeers: true,
      emitSelf: false,
      heartbeatInterval: 1000
    })
  }
})

const pubsub = node.services.pubsub
const selfId = node.peerId.toString()

node.addEventListener('peer:discovery', (evt) => {
  const info = evt.detail
  const pid = info.id.toString()
  if (pid === selfId) return
  emit({
    event: 'peer_discovered',
    peer_id: pid,
    addrs: info.multiaddrs.map((ma) => ma.toString())
  })
  if (opts.autodial && node.getConnections(info.id).length === 0) {
    // dial by peer id: the peer store already holds the discovered addresses
    node.dial(info.id).catch((err) => {
      emit({ event: 'dial_error', peer_id: pid, error: String(err.message ?? err) })
    })
  }
})

node.addEventListener('peer:connect', (evt) => {
  emit({ event: 'peer_connected', peer_id: evt.detail.toString() })
})

node.addEventListener('peer:disconnect', (evt) => {
  emit({ event: 'peer_disconnected', peer_id: evt.detail.toString() })
})

node.addEventListener('peer:identify', (evt) => {
  const r = evt.detail
  emit({
    event: 'peer_identified',
    peer_id: r.peerId.toString(),
    protocols: r.protocols,
    agent: r.agentVersion ?? null
  })
})

pubsub.addEventListener('subscription-change', (evt) => {
  const { peerId, subscriptions } = evt.detail
  emit({
    event: 'subscription_change',
    peer_id: peerId.toString(),
    topics: pubsub.getTopics().filter((t) =>
      pubsub.getSubscribers(t).some((p) => p.equals(peerId))),
    changes: subscriptions.map((s) => ({ topic: s.topic, subscribe: s.subscribe }))
  })
})

pubsub.addEventListener('message', (evt) => {
  const msg = evt.detail
  emit({
    event: 'message',
    topic: msg.topic,
    from: msg.type === 'signed' ? msg.from.toString() : null,
    data_b64: Buffer.from(msg.data).toString('base64'),
    signature_type: msg.type === 'signed' ? 'signed' : 'unsigned',
    seqno: msg.type === 'signed' && msg.sequenceNumber != null
      ? msg.sequenceNumber.toString()
      : null
  })
})

for (const t of opts.topics) pubsub.subscribe(t)

await node.start()

emit({
  event: 'ready',
  peer_id: selfId,
  addrs: node.getMultiaddrs().map((ma) => ma.toString()),
  topics: pubsub.getTopics(),
  muxers: opts.muxers,
  mdns: opts.mdns
})

async function handle (cmd) {
  switch (cmd.cmd) {
    case 'dial': {
      const conn = await node.dial(multiaddr(cmd.addr))
      emit({ event: 'dialed', addr: cmd.addr, peer_id: conn.remotePeer.toString(), muxer: conn.multiplexer ?? null })
      return
    }
    case 'publish': {
      const data = Buffer.from(cmd.data_b64 ?? '', 'base64')
      const res = await pubsub.publish(cmd.topic, data)
      emit({ event: 'published', topic: cmd.topic, recipients: res.recipients.length })
      return
    }
    case 'ping': {
      const target = cmd.addr != null ? multiaddr(cmd.addr) : peerIdFromString(cmd.peer_id)
      const rtt = await node.services.ping.ping(target)
      emit({ event: 'pong', peer_id: cmd.peer_id ?? null, addr: cmd.addr ?? null, rtt_ms: rtt })
      return
    }
    case 'subscribe':
      pubsub.subscribe(cmd.topic)
      emit({ event: 'subscribed', topic: cmd.topic })
      return
    case 'unsubscribe':
      pubsub.unsubscribe(cmd.topic)
      emit({ event: 'unsubscribed', topic: cmd.topic })
      return
    case 'peers': {
      const topics = {}
      for (const t of pubsub.getTopics()) {
        topics[t] = pubsub.getSubscribers(t).map((p) => p.toString())
      }
      const mesh = {}
      for (const t of pubsub.getTopics()) {
        mesh[t] = pubsub.getMeshPeers(t)
      }
      emit({
        event: 'peers',
        connections: node.getConnections().map((c) => ({
          peer_id: c.remotePeer.toString(),
          addr: c.remoteAddr.toString(),
          muxer: c.multiplexer ?? null,
          encryption: c.encryption ?? null,
          direction: c.direction
        })),
        topics,
        mesh
      })
      return
    }
    case 'stop':
      await shutdown(0)
      return
    default:
      throw new Error(`unknown cmd ${JSON.stringify(cmd.cmd)}`)
  }
}

let stopping = false
async function shutdown (code) {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => {
    log('stop timed out, exiting')
    process.exit(code === 0 ? 1 : code)
  }, 5000)
  timer.unref()
  try {
    await node.stop()
  } catch (err) {
    log('stop failed:', String(err?.stack ?? err))
  }
  emit({ event: 'stopped' })
  process.exit(code)
}

process.on('SIGTERM', () => { shutdown(0) })
process.on('SIGINT', () => { shutdown(0) })
process.on('unhandledRejection', (err) => {
  log('unhandled rejection:', String(err?.stack ?? err))
})

const rl = readline.createInterface({ input: process.stdin, terminal: false })
rl.on('line', (line) => {
  line = line.trim()
  if (line === '') return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    emit({ event: 'error', error: `bad json: ${err.message}`, line })
    return
  }
  handle(cmd).catch((err) => {
    emit({ event: 'error', cmd: cmd.cmd ?? null, topic: cmd.topic ?? null, error: String(err?.message ?? err) })
  })
})
rl.on('close', () => { shutdown(0) })
