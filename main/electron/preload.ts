/**
 * The preload: the only thing that crosses from the page to the main process. It exposes window.rwBridge
 * with exactly two functions, each allow-listed: invoke(op, ...args) for the operations in BRIDGE_OPS, and
 * subscribe(channel, cb) for the push channels in BRIDGE_CHANNELS. No Node, no ipcRenderer, nothing else.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { BRIDGE_CHANNELS, BRIDGE_OPS } from '../../shared/bridge.ts';

contextBridge.exposeInMainWorld('rwBridge', {
  invoke(op: string, ...args: unknown[]): Promise<unknown> {
    if (!(BRIDGE_OPS as readonly string[]).includes(op)) return Promise.reject(new Error(`unknown operation ${op}`));
    return ipcRenderer.invoke('rw:invoke', op, ...args);
  },
  subscribe(channel: string, cb: (payload: unknown) => void): () => void {
    if (!(BRIDGE_CHANNELS as readonly string[]).includes(channel)) throw new Error(`unknown channel ${channel}`);
    const handler = (_e: IpcRendererEvent, ch: string, payload: unknown) => {
      if (ch === channel) cb(payload);
    };
    ipcRenderer.on('rw:push', handler);
    return () => ipcRenderer.removeListener('rw:push', handler);
  },
});
