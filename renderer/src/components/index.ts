/** Shared UI pieces: import from '../components/index.ts'. Props are stable; add, don't change. */
export { Button, DisabledReason, type ButtonProps, type ButtonVariant } from './Button.tsx';
export {
  Checkbox,
  ErrorBox,
  Field,
  NumberField,
  SelectField,
  TextField,
  errorsFromApi,
  issuesToErrors,
  validate,
  type FieldErrors,
  type IssueLike,
} from './Field.tsx';
export { ConfirmDialog, Dialog, type DialogProps } from './Dialog.tsx';
export { ToastProvider, useToast, type ToastApi, type ToastOptions } from './Toast.tsx';
export { Badge, EmptyState, NavigateContext, ReadOnlyNotice, RequireConnection, ViewHeader, useNavigate, type BadgeTone, type Navigate } from './Layout.tsx';
export { StatusBar } from './StatusBar.tsx';
export { ACTIONS, TableHead, type Column } from './TableHead.tsx';
export { ErrorBoundary } from './ErrorBoundary.tsx';
export * from './format.ts';
