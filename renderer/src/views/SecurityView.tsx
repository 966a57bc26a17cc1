// Placeholder until the view is written (issue 5).
export function SecurityView(_props: Record<string, unknown>) {
  return <p>Security: not written yet.</p>;
}
