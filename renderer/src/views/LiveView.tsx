// Placeholder until the view is written (issue 5).
export function LiveView(_props: Record<string, unknown>) {
  return <p>Live: not written yet.</p>;
}
