// Placeholder until the view is written (issue 5).
export function ClientsView(_props: Record<string, unknown>) {
  return <p>Clients: not written yet.</p>;
}
