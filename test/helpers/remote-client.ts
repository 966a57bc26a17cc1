/**
 * A real TCP client that the relay sees as coming from a non-loopback address. Tests may only use loopback,
 * so the test accepts a real loopback connection on its own listener and hands the server side to the relay's
 * smtp-server with SMTPServer.connect(socket, { remoteAddress }), the public entry point smtp-server itself uses
 * for PROXY-protocol connections. Everything after that is the real relay on a real socket.
 */
import net from 'node:net';
import type { Relay } from '../../relay/relay.ts';
import { RawSmtp } from './smtp-client.ts';

export async function openAsRemote(relay: Relay, remoteAddress: string, remotePort = 40_000): Promise<RawSmtp> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const serverSide = new Promise<net.Socket>((resolve) => srv.once('connection', resolve));
  let c: RawSmtp;
  try {
    c = await RawSmtp.connect((srv.address() as net.AddressInfo).port);
  } finally {
    srv.close();
  }
  const sock = await serverSide;
  // from here the relay owns the server side (its stop() closes it)
  relay.front.server.connect(sock, { remoteAddress, remotePort, localAddress: '127.0.0.1', localPort: relay.smtpAddress.port });
  return c;
}
