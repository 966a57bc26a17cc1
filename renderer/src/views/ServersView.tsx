// Placeholder until the view is written (issue 5).
export function ServersView(_props: Record<string, unknown>) {
  return <p>Servers: not written yet.</p>;
}
