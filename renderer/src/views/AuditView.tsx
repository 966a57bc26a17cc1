// Placeholder until the view is written (issue 5).
export function AuditView(_props: Record<string, unknown>) {
  return <p>Audit: not written yet.</p>;
}
