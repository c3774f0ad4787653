// Native socket options against real loopback TCP connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  availableCongestion, getCongestion, native, setCongestion, setNotSentLowat,
  setRecvBuffer, setSendBuffer, socketFd, tcpInfo,
} from '../../native-bindings/index.ts';

const TRANSFER_BYTES = 4 * 1024 * 1024;

/** A connected client/server pair on 127.0.0.1; close() ends both. */
async function connectedPair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  const accepted = once(listener, 'connection');
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = (await accepted) as [net.Socket];
  return {
    client, server,
    close: () => { client.destroy(); server.destroy(); listener.close(); },
  };
}

test('tcpInfo reports acked bytes and rtt after a transfer', async () => {
  const pair = await connectedPair();
  try {
    // Send 4 MiB and wait until the server has read all of it.
    let received = 0;
    const done = new Promise<void>((resolve) => {
      pair.server.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= TRANSFER_BYTES) resolve();
      });
    });
    pair.client.write(Buffer.alloc(TRANSFER_BYTES, 7));
    await done;

    const info = tcpInfo(pair.client);
    assert.ok(info.bytesAcked > 0, `bytesAcked ${info.bytesAcked}`);
    assert.ok(info.bytesSent >= TRANSFER_BYTES, `bytesSent ${info.bytesSent}`);
    assert.ok(info.rttUs > 0, `rttUs ${info.rttUs}`);
    assert.ok(info.minRttUs > 0 && info.minRttUs <= info.rttUs * 10, `minRttUs ${info.minRttUs}`);
    assert.ok(info.sndCwnd > 0, `sndCwnd ${info.sndCwnd}`);
    // Loopback may still retransmit (the kernel's tail-loss probe fires on a
    // fresh machine): the kernel promises counters, not zero. Retransmitted
    // bytes are part of the bytes sent, and a retransmit sends at least one byte.
    assert.ok(Number.isInteger(info.totalRetrans), `totalRetrans ${info.totalRetrans}`);
    assert.ok(info.bytesRetrans <= info.bytesSent, `bytesRetrans ${info.bytesRetrans} > bytesSent ${info.bytesSent}`);
    assert.ok(info.totalRetrans <= info.bytesRetrans, `totalRetrans ${info.totalRetrans} segments but bytesRetrans ${info.bytesRetrans}`);
    for (const [key, value] of Object.entries(info)) {
      assert.equal(typeof value, 'number', key);
      assert.ok(Number.isFinite(value) && value >= 0, `${key} = ${value}`);
    }
  } finally {
    pair.close();
  }
});

test('setCongestion bbr is read back by getCongestion', async () => {
  assert.ok(availableCongestion().includes('bbr'), `kernel lacks bbr: ${availableCongestion().join(' ')}`);
  const pair = await connectedPair();
  try {
    setCongestion(pair.client, 'bbr');
    assert.equal(getCongestion(pair.client), 'bbr');
    setCongestion(pair.client, 'cubic');
    assert.equal(getCongestion(pair.client), 'cubic');
  } finally {
    pair.close();
  }
});

test('an unknown congestion algorithm throws naming it', async () => {
  const pair = await connectedPair();
  try {
    assert.throws(() => setCongestion(pair.client, 'no-such-cc'),
      /TCP_CONGESTION \(no-such-cc\): No such file or directory/);
    assert.throws(() => native().setCongestion(socketFd(pair.client), 42 as unknown as string), TypeError);
  } finally {
    pair.close();
  }
});

test('availableCongestion lists the kernel algorithms', () => {
  const names = availableCongestion();
  assert.ok(names.length > 0);
  for (const name of names) assert.match(name, /^[a-z0-9_]+$/);
});

test('buffer and lowat setters apply and reject bad input', async () => {
  const pair = await connectedPair();
  try {
    setSendBuffer(pair.client, 256 * 1024);
    setRecvBuffer(pair.client, 256 * 1024);
    setNotSentLowat(pair.client, 128 * 1024);
    // A closed fd number surfaces errno text and the option name.
    assert.throws(() => native().setSendBuffer(1 << 20, 1024), /SO_SNDBUF: Bad file descriptor/);
    assert.throws(() => native().tcpInfo(1 << 20), /TCP_INFO: Bad file descriptor/);
    assert.throws(() => native().setNotSentLowat(socketFd(pair.client), -1), RangeError);
  } finally {
    pair.close();
  }
});

test('socketFd fails clearly on a socket without a handle', () => {
  const socket = new net.Socket();
  assert.throws(() => socketFd(socket), /socket fd: unavailable/);
});
