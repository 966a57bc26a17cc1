// Placeholder until the status bar is written (issue 5).
export function StatusBar(_props: { onOpenServers: () => void }) {
  return null;
}
