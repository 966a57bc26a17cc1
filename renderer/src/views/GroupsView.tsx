// Placeholder until the view is written (issue 5).
export function GroupsView(_props: Record<string, unknown>) {
  return <p>Groups: not written yet.</p>;
}
