/**
 * The allow-lists of the console's preload bridge. Dependency-free: the sandboxed preload bundles only this.
 */
/** The request/response operations that cross the bridge (allow-list). */
export const BRIDGE_OPS = [
  'profiles.list',
  'profiles.save',
  'profiles.remove',
  'profiles.storageWarning',
  'connection.connect',
  'connection.disconnect',
  'connection.acceptFingerprint',
  'connection.forgetFingerprint',
  'connection.state',
  'call',
  'notify',
] as const;
export type BridgeOp = (typeof BRIDGE_OPS)[number];

/** Push channels from main to the renderer. */
export const BRIDGE_CHANNELS = ['state', 'events', 'stats', 'config'] as const;
export type BridgeChannel = (typeof BRIDGE_CHANNELS)[number];

