/**
 * The bench's baseline: a bare smtp-server that accepts every message and discards it.
 * --no-delay removes smtp-server's hard-coded 100 ms early-talker wait (as the relay does), so the
 * comparison measures what the relay adds, not that fixed wait. Usage: tsx bench/baseline-sink.ts PORT [--no-delay]
 */
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const port = Number(process.argv[2]);
if (process.argv.includes('--no-delay')) {
  // private API of smtp-server 3.21.6 (pinned): init() waits 100 ms before connectionReady()
  const proto = SMTPConnection.prototype as unknown as { init(): void; _setListeners(cb: () => void): void; connectionReady(): void };
  proto.init = function (this: typeof proto) {
    this._setListeners(() => this.connectionReady());
  };
}
const server = new SMTPServer({
  authOptional: true,
  disableReverseLookup: true,
  logger: false,
  onData(stream, _session, cb) {
    stream.on('end', () => cb());
    stream.resume();
  },
});
server.on('error', () => {});
server.server.listen({ port, host: '127.0.0.1', backlog: 8192 });
process.on('SIGTERM', () => process.exit(0));
