/**
 * The console's views, in menu order, with their keyboard shortcuts (Ctrl/Cmd + key).
 * Each view is a component in its own file under views/.
 */
export const VIEWS = [
  { id: 'servers', label: 'Servers', key: '1' },
  { id: 'dashboard', label: 'Dashboard', key: '2' },
  { id: 'live', label: 'Live traffic', key: '3' },
  { id: 'security', label: 'Security options', key: '4' },
  { id: 'groups', label: 'Trusted IP groups', key: '5' },
  { id: 'clients', label: 'Clients', key: '6' },
  { id: 'queue', label: 'Queue', key: '7' },
  { id: 'audit', label: 'Audit log', key: '8' },
] as const;
export type ViewId = (typeof VIEWS)[number]['id'];
