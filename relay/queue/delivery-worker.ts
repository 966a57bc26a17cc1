/**
 * The delivery worker thread: runs the SMTP conversations the queue asks for (relay/queue/deliverer.ts) and answers
 * each with its result. It holds the connection cache; it decides nothing about routes, retries or bounces.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InProcessDeliverer, type ClientOptions, type FromWorker, type ToWorker } from './deliverer.ts';

const port = parentPort!;
const deliverer = new InProcessDeliverer(workerData as ClientOptions);
const closers = new Map<number, () => void>();

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'deliver':
      void deliverer
        .deliver({
          ...m.req,
          track: (close) => {
            closers.set(m.id, close);
            return () => closers.delete(m.id);
          },
        })
        .then(
          (result) => port.postMessage({ t: 'result', id: m.id, result } satisfies FromWorker),
          (err: Error) =>
            port.postMessage({ t: 'result', id: m.id, result: { kind: 'session-failed', reason: `delivery failed unexpectedly: ${err.message}`, tlsHandshake: false } } satisfies FromWorker),
        );
      break;
    case 'close':
      closers.get(m.id)?.();
      break;
    case 'closeAll':
      for (const close of closers.values()) close();
      void deliverer.close().then(() => port.postMessage({ t: 'closedAll' } satisfies FromWorker));
      break;
  }
});
