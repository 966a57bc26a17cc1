/** Downstream servers that are not there: one that accepts and never greets, and a port where nothing listens. */
import net from 'node:net';

/** A TCP listener that accepts connections and never says a word (a hung server). */
export async function silentServer() {
  const sockets = new Set<net.Socket>();
  const stats = { connections: 0, open: 0, maxOpen: 0 };
  const server = net.createServer((s) => {
    stats.connections++;
    stats.maxOpen = Math.max(stats.maxOpen, ++stats.open);
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => {
      stats.open--;
      sockets.delete(s);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A loopback port where nothing listens (bound, read, closed). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
