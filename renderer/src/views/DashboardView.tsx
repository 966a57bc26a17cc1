// Placeholder until the view is written (issue 5).
export function DashboardView(_props: Record<string, unknown>) {
  return <p>Dashboard: not written yet.</p>;
}
