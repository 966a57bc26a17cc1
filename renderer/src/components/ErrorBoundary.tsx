/**
 * Keeps one broken view from blanking the whole console: shows what failed, in words, with a way to try again.
 * `resetKey` (e.g. the view id) clears the error when it changes.
 */
import { Component, type ErrorInfo, type ReactNode } from 'react';

interface Props {
  children: ReactNode;
  /** what failed, for the message ("the Dashboard") */
  what?: string;
  resetKey?: unknown;
}
interface State {
  error: Error | null;
  key: unknown;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null, key: this.props.resetKey };

  static getDerivedStateFromError(error: Error): Partial<State> {
    return { error };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    return props.resetKey !== state.key ? { error: null, key: props.resetKey } : null;
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(`view failed: ${error.message}`, info.componentStack);
  }

  render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div className="error-box" role="alert" data-testid="view-error">
        <strong>{this.props.what ? `${this.props.what} failed to show.` : 'This view failed to show.'}</strong>
        <div>
          The console hit an unexpected error: <span className="mono">{error.message}</span>. Your connection and the relay are not affected. Try again, or
          switch to another view.
        </div>
        <div className="error-box-action">
          <button type="button" className="btn btn-small" onClick={() => this.setState({ error: null })}>
            Try again
          </button>
        </div>
      </div>
    );
  }
}
