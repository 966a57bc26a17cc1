// Placeholder until the view is written (issue 5).
export function QueueView(_props: Record<string, unknown>) {
  return <p>Queue: not written yet.</p>;
}
