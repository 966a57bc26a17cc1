/**
 * Servers: connection profiles (add, edit, remove, connect/disconnect), the first-connection certificate prompt,
 * the hard stop on a changed certificate, the refused-token case, and the token-storage warning.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ProfileInput, type CertificateInfo, type ConnectionState, type ConnectionStatus, type ProfileSaved, type ProfileView } from '../../../shared/console-api.ts';
import {
  Badge,
  Button,
  ConfirmDialog,
  ErrorBox,
  NumberField,
  TextField,
  ViewHeader,
  errorsFromApi,
  fmtDateTime,
  useToast,
  validate,
  type FieldErrors,
} from '../components/index.ts';
import { RetryNowButton } from '../components/Layout.tsx';
import { securityDrafts } from './security/draft.ts';
import { explainError, isStopped, leaveLabel, retryWords, useApi, useConnection, useSecondsUntil } from '../hooks.ts';

interface FormState {
  id?: string;
  name: string;
  host: string;
  port: string;
  token: string;
}
const EMPTY_FORM: FormState = { name: '', host: '', port: '8465', token: '' };

/** "AB:CD:..." in groups a person can compare aloud */
function FingerprintText({ value, className }: { value: string; className?: string }) {
  return (
    <code className={['fingerprint', className ?? ''].filter(Boolean).join(' ')} data-testid="fingerprint">
      {value}
    </code>
  );
}

function CertificateTable({ cert }: { cert: CertificateInfo }) {
  const expired = Date.parse(cert.validTo) < Date.now();
  const notYet = Date.parse(cert.validFrom) > Date.now();
  return (
    <table className="cert-table">
      <tbody>
        <tr>
          <th>SHA-256</th>
          <td>
            <FingerprintText value={cert.fingerprint256} />
          </td>
        </tr>
        <tr>
          <th>Subject</th>
          <td className="mono">{cert.subject || '—'}</td>
        </tr>
        <tr>
          <th>Issuer</th>
          <td className="mono">{cert.issuer === cert.subject ? `${cert.issuer} (self-signed)` : cert.issuer || '—'}</td>
        </tr>
        <tr>
          <th>Valid</th>
          <td>
            {fmtDateTime(cert.validFrom)} to {fmtDateTime(cert.validTo)} {expired && <Badge tone="bad">expired</Badge>}
            {notYet && <Badge tone="bad">not yet valid</Badge>}
          </td>
        </tr>
      </tbody>
    </table>
  );
}

/**
 * On the current server's card while the console is trying: the whole message (the status bar has one line for it),
 * the live countdown to the next attempt, and "Retry now".
 */
function TryingNote({ conn }: { conn: ConnectionState }) {
  const seconds = useSecondsUntil(conn.status === 'reconnecting' ? conn.retryAt : null);
  const retry = retryWords(conn, seconds);
  return (
    <div data-testid="server-card-status" role="status">
      <p style={{ margin: 0 }}>{conn.message}</p>
      {retry && (
        <p className="faint" style={{ margin: '2px 0 0', fontSize: 12.5 }} data-testid="retry-countdown">
          {retry}
        </p>
      )}
    </div>
  );
}

/** What the user has to decide about the current connection, if anything. */
function ConnectionPrompt({ conn, profile, onEdit }: { conn: ConnectionState; profile: ProfileView | undefined; onEdit: (p: ProfileView, focus?: 'token') => void }) {
  const api = useApi();
  const toast = useToast();
  const qc = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [confirmForget, setConfirmForget] = useState(false);
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await fn();
    } catch (err) {
      toast.error(err);
    } finally {
      setBusy(false);
      void qc.invalidateQueries({ queryKey: ['profiles'] });
    }
  };
  const name = profile?.name ?? conn.profileName ?? 'this server';
  const where = profile ? `${profile.host}:${profile.port}` : '';

  if (conn.status === 'fingerprint-unknown' && conn.certificate && conn.profileId) {
    const cert = conn.certificate;
    const id = conn.profileId;
    return (
      <section className="card trust-prompt" aria-labelledby="fp-unknown-title" data-testid="fingerprint-prompt">
        <h2 id="fp-unknown-title">First connection to {name}: check its certificate</h2>
        <p>
          The console has never connected to <span className="mono">{where}</span>. Compare this fingerprint with the one the relay printed when it started
          (or ask its administrator). Accept only if they match: the console remembers it and will refuse a different certificate later. Nothing, not
          even the token, has been sent yet.
        </p>
        <CertificateTable cert={cert} />
        <div className="button-row">
          {/* (either answer ends the "Added ... compare its fingerprint, then accept it" toast's advice: it goes) */}
          <Button
            variant="primary"
            busy={busy}
            onClick={() => void run(async () => {
              toast.dismissKey(savedKey(id));
              await api.connection.acceptFingerprint(id, cert.fingerprint256);
            })}
          >
            Accept and connect
          </Button>
          <Button
            onClick={() => void run(async () => {
              toast.dismissKey(savedKey(id));
              await api.connection.disconnect();
            })}
          >
            Cancel
          </Button>
        </div>
      </section>
    );
  }

  if (conn.status === 'fingerprint-mismatch' && conn.certificate && conn.profileId) {
    const id = conn.profileId;
    return (
      <section className="card hard-stop" role="alert" aria-labelledby="fp-mismatch-title" data-testid="fingerprint-mismatch">
        <h2 id="fp-mismatch-title">Stopped: the certificate of {name} changed</h2>
        <p>
          The relay at <span className="mono">{where}</span> presented a different certificate from the one you accepted before. The console stopped
          before sending anything: your token did not leave this computer.
        </p>
        <table className="cert-table">
          <tbody>
            <tr>
              <th>Accepted before</th>
              <td>
                <FingerprintText value={conn.pinnedFingerprint ?? '(unknown)'} className="fp-old" />
              </td>
            </tr>
            <tr>
              <th>Presented now</th>
              <td>
                <FingerprintText value={conn.certificate.fingerprint256} />
              </td>
            </tr>
          </tbody>
        </table>
        <CertificateTable cert={conn.certificate} />
        <p>
          <strong>What to do:</strong> if nobody replaced the relay's certificate, do not connect: someone may be intercepting the connection. If it was
          replaced on purpose (a new certificate, a reinstalled relay), confirm the new fingerprint with the relay's administrator (the relay prints it
          when it starts), then forget the old one and connect again: you will be asked to accept the new fingerprint.
        </p>
        <div className="button-row">
          <Button variant="danger" onClick={() => setConfirmForget(true)}>
            Forget the old fingerprint…
          </Button>
          <Button onClick={() => void run(() => api.connection.disconnect())}>Close</Button>
        </div>
        <ConfirmDialog
          open={confirmForget}
          danger
          busy={busy}
          title="Forget the accepted certificate?"
          confirmLabel="Forget and reconnect"
          onCancel={() => setConfirmForget(false)}
          onConfirm={() =>
            void run(async () => {
              await api.connection.forgetFingerprint(id);
              setConfirmForget(false);
              await api.connection.connect(id);
            })
          }
        >
          <p>
            Only if you confirmed with the relay's administrator that the certificate was replaced on purpose. You will then be shown the new fingerprint
            to accept.
          </p>
        </ConfirmDialog>
      </section>
    );
  }

  if (conn.status === 'auth-failed') {
    return (
      <ErrorBox title={`${name}: the token was refused`} action={profile && <Button onClick={() => onEdit(profile, 'token')}>Edit the server and paste a token</Button>}>
        {conn.message}
      </ErrorBox>
    );
  }

  // stopped by itself: what answers at this address is not the relay (its SMTP port, say); retrying would not help
  if (isStopped(conn) && profile) {
    return (
      <ErrorBox
        title={`${name}: stopped`}
        action={
          <div className="button-row">
            <Button variant="primary" onClick={() => onEdit(profile)}>
              Edit the server
            </Button>
            <Button busy={busy} onClick={() => void run(() => api.connection.connect(profile.id))}>
              Try again
            </Button>
          </div>
        }
      >
        <span data-testid="stopped-message">{conn.message}</span>
      </ErrorBox>
    );
  }
  return null;
}

/** the key of a server's last "Added" / "Saved" toast (one at a time per server) */
const savedKey = (profileId: string) => `server-saved:${profileId}`;

/** The toast after an edit is saved: what the save did about the connection, as the core said. */
/** The toast after "Save and connect" of a new server: what the first attempt reached (the status bar goes on from there). */
function addedWords(name: string, reached: ConnectionStatus | null): string {
  switch (reached) {
    case 'connected':
      return `Added ${name}; connected.`;
    case 'fingerprint-unknown':
      return `Added ${name}. Compare its certificate fingerprint with the one the relay printed, then accept it to connect.`;
    default:
      // (refused, unreachable, retrying: the status bar says which, and keeps saying it as it changes)
      return `Added ${name}. The status bar shows the connection.`;
  }
}

function savedWords(p: ProfileSaved): string {
  switch (p.connection) {
    case 'reconnecting':
      return `Saved ${p.name}; connecting again with the new settings…`;
    case 'unchanged':
      return `Saved ${p.name}. Its host, port and token are as before: the connection stays as it is.`;
    case 'after-lockout':
      return `Saved ${p.name}. The relay has locked this address out: the console tries the new token when the lockout ends.`;
    case 'not-current':
      return `Saved ${p.name}. The console is not on this server: no connection changed.`;
  }
}

function ServerForm({
  editing,
  onDone,
  existing,
  focus,
}: {
  editing: ProfileView | null;
  onDone: () => void;
  existing: ProfileView[];
  /** a field to put the cursor in once the form shows `editing` (a new object each time it is asked for) */
  focus?: { field: 'token' } | null;
}) {
  const api = useApi();
  const toast = useToast();
  const qc = useQueryClient();
  const [form, setForm] = useState<FormState>(EMPTY_FORM);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [tried, setTried] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  // the form shows the profile being edited (or a blank one): on a change of profile, and after a save
  const reset = useCallback(() => {
    setForm(editing ? { id: editing.id, name: editing.name, host: editing.host, port: String(editing.port), token: '' } : EMPTY_FORM);
    setErrors({});
    setTried(false);
    setFailure(null);
  }, [editing]);
  useEffect(reset, [reset]);
  // "Edit the server and paste a token": the cursor goes where the token is to be pasted, not left on the button
  const formRef = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (!focus || !editing) return;
    const input = formRef.current?.querySelector<HTMLInputElement>(`input[name="${focus.field}"]`);
    input?.focus();
    input?.scrollIntoView({ block: 'nearest' });
  }, [focus, editing]);

  const toInput = (f: FormState): ProfileInput => ({
    ...(f.id ? { id: f.id } : {}),
    name: f.name,
    host: f.host,
    port: f.port as unknown as number,
    ...(f.token.trim() || !f.id ? { token: f.token } : {}),
  });
  const check = (f: FormState): FieldErrors => {
    const r = validate(ProfileInput, toInput(f));
    const errs: FieldErrors = r.ok ? {} : { ...r.errors };
    if (!f.id && !f.token.trim()) errs.token = 'paste the token from the relay (admin-token file or "token create")';
    if (existing.some((p) => p.id !== f.id && p.name.trim().toLowerCase() === f.name.trim().toLowerCase())) errs.name = 'this name is taken';
    return errs;
  };
  const update = (patch: Partial<FormState>) => {
    const next = { ...form, ...patch };
    setForm(next);
    if (tried) setErrors(check(next));
  };

  const save = useMutation({
    mutationFn: async ({ connect }: { connect: boolean }) => {
      // saving new settings for the server the console is on (or trying, or refused by) connects again with them:
      // the core decides, and its answer says what it did
      const p = await api.profiles.save(toInput(form));
      // (the state the first attempt reached: the toast says that, not a "connecting…" that outlives the connection)
      const reached = connect ? (await api.connection.connect(p.id)).status : null;
      return { ...p, reached };
    },
    onSuccess: ({ reached, ...p }, { connect }) => {
      void qc.invalidateQueries({ queryKey: ['profiles'] });
      toast.show({
        kind: 'success',
        // saving again replaces this server's last "Saved" toast rather than stacking another
        key: savedKey(p.id),
        message: editing ? savedWords(p) : connect ? addedWords(p.name, reached) : `Added ${p.name}.`,
      });
      reset();
      onDone();
    },
    onError: (err) => {
      const fe = errorsFromApi(err);
      if (fe) setErrors(fe);
      setFailure(explainError(err));
    },
  });

  const submit = (connect: boolean) => {
    setTried(true);
    setFailure(null);
    const errs = check(form);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    save.mutate({ connect });
  };

  return (
    <form
      ref={formRef}
      className="card"
      aria-labelledby="server-form-title"
      onSubmit={(e) => {
        e.preventDefault();
        submit(!editing);
      }}
      noValidate
      data-testid="server-form"
    >
      <h2 id="server-form-title">{editing ? `Edit ${editing.name}` : 'Add a server'}</h2>
      {failure && !Object.keys(errors).length && <ErrorBox>{failure}</ErrorBox>}
      <TextField label="Name" name="name" value={form.name} onChange={(v) => update({ name: v })} error={errors.name} placeholder="Edge relay" autoComplete="off" />
      <TextField
        label="Host"
        name="host"
        value={form.host}
        onChange={(v) => update({ host: v })}
        error={errors.host}
        placeholder="relay.example.com or 192.0.2.10"
        autoComplete="off"
        spellCheck={false}
      />
      <NumberField label="Management port" name="port" value={form.port} onChange={(v) => update({ port: v })} error={errors.port} hint="8465 unless the relay's manage.listen says otherwise" min={1} max={65535} />
      <TextField
        label="Token"
        name="token"
        type="password"
        value={form.token}
        onChange={(v) => update({ token: v })}
        error={errors.token}
        hint={editing ? (editing.hasToken ? 'Leave empty to keep the stored token.' : 'No token is stored: paste one.') : 'The admin-token file on the relay, or a token from "token create".'}
        autoComplete="off"
        spellCheck={false}
      />
      <div className="button-row">
        {editing ? (
          <>
            <Button type="submit" variant="primary" busy={save.isPending}>
              Save
            </Button>
            <Button onClick={onDone}>Cancel</Button>
          </>
        ) : (
          <>
            <Button type="submit" variant="primary" busy={save.isPending}>
              Save and connect
            </Button>
            <Button onClick={() => submit(false)} disabled={save.isPending}>
              Save only
            </Button>
          </>
        )}
      </div>
    </form>
  );
}

export function ServersView(_props: Record<string, unknown>) {
  const api = useApi();
  const conn = useConnection();
  const toast = useToast();
  const qc = useQueryClient();
  const profiles = useQuery({ queryKey: ['profiles'], queryFn: () => api.profiles.list(), staleTime: 0 });
  const warning = useQuery({ queryKey: ['profiles', 'storageWarning'], queryFn: () => api.profiles.storageWarning(), staleTime: Infinity });
  const [editing, setEditing] = useState<ProfileView | null>(null);
  const [focus, setFocus] = useState<{ field: 'token' } | null>(null);
  const edit = (p: ProfileView | null, field?: 'token') => {
    setEditing(p);
    setFocus(p && field ? { field } : null);
  };
  const [removing, setRemoving] = useState<ProfileView | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);

  // the pinned fingerprint shown on a card changes when one is accepted
  useEffect(() => {
    void qc.invalidateQueries({ queryKey: ['profiles'] });
  }, [conn?.status, qc]);

  const list = profiles.data ?? [];
  const current = conn?.profileId ? list.find((p) => p.id === conn.profileId) : undefined;

  const act = async (id: string | null, fn: () => Promise<unknown>) => {
    setBusyId(id);
    try {
      await fn();
    } catch (err) {
      toast.error(err);
    } finally {
      setBusyId(null);
    }
  };

  const remove = useMutation({
    mutationFn: (p: ProfileView) => api.profiles.remove(p.id),
    onSuccess: (_r, p) => {
      toast.show({ kind: 'info', message: `Removed ${p.name}.` });
      // unsaved security edits kept for that relay go with it
      securityDrafts.delete(p.id);
      if (editing?.id === p.id) edit(null);
      setRemoving(null);
    },
    onError: (err) => toast.error(err, 'Could not remove the server'),
    onSettled: () => void qc.invalidateQueries({ queryKey: ['profiles'] }),
  });

  return (
    <div data-testid="servers-view" className="servers-view">
      {warning.data && (
        <div className="warning-banner" role="note" data-testid="storage-warning">
          <strong>Tokens are not stored safely on this computer.</strong> {warning.data}
        </div>
      )}
      <ViewHeader title="Servers" subtitle="The relays this console manages. The connection stays up and reconnects by itself.">
        {editing && <Button onClick={() => edit(null)}>Add a server</Button>}
      </ViewHeader>
      {conn && <ConnectionPrompt conn={conn} profile={current} onEdit={edit} />}
      <div className="servers">
        <div className="server-list" aria-label="Server profiles">
          {profiles.isError && <ErrorBox>{explainError(profiles.error)}</ErrorBox>}
          {profiles.isSuccess && list.length === 0 && (
            <div className="card empty-state">
              <p className="empty-title">No servers yet</p>
              <p>Add the relay's host, its management port and a token. On first start the relay prints all three (the token is in DIR/admin-token).</p>
            </div>
          )}
          {list.map((p) => {
            const isCurrent = conn?.profileId === p.id;
            const status = isCurrent ? conn!.status : null;
            const stopped = isCurrent && isStopped(conn!);
            // what leaving this state does, in words ("Stop trying", "Dismiss"...); null: Connect instead
            const leave = status ? leaveLabel(status) : null;
            const trying = status === 'connecting' || status === 'authenticating' || status === 'reconnecting';
            return (
              <article key={p.id} className={`card server-card${isCurrent ? ' current' : ''}`} data-testid="server-card" data-profile-name={p.name}>
                <div className="server-card-head">
                  <div>
                    <div className="server-card-name">{p.name}</div>
                    <div className="server-card-addr">
                      {p.host}:{p.port}
                    </div>
                  </div>
                  {status === 'connected' && <Badge tone="ok">connected as {conn!.role}</Badge>}
                  {status && status !== 'connected' && status !== 'disconnected' && (
                    <Badge tone={status === 'fingerprint-mismatch' || status === 'auth-failed' ? 'bad' : 'warn'}>{status.replace('-', ' ')}</Badge>
                  )}
                  {stopped && <Badge tone="bad">stopped</Badge>}
                </div>
                <div className="faint" style={{ fontSize: 12 }}>
                  {p.fingerprint256 ? (
                    <span title={p.fingerprint256}>Certificate accepted: {p.fingerprint256.slice(0, 23)}…</span>
                  ) : (
                    'Certificate not yet accepted: you will be asked on the first connection.'
                  )}
                  {!p.hasToken && (
                    <>
                      {' '}
                      <Badge tone="warn">no token stored</Badge>
                    </>
                  )}
                </div>
                {trying && <TryingNote conn={conn!} />}
                <div className="button-row">
                  {status === 'reconnecting' && <RetryNowButton profileId={p.id} variant="primary" />}
                  {leave ? (
                    <Button
                      busy={busyId === p.id}
                      title={leave === 'Dismiss' ? 'Clear this state: the console stays not connected until you connect again.' : undefined}
                      onClick={() => void act(p.id, () => api.connection.disconnect())}
                    >
                      {leave}
                    </Button>
                  ) : (
                    <Button variant="primary" busy={busyId === p.id} onClick={() => void act(p.id, () => api.connection.connect(p.id))}>
                      Connect
                    </Button>
                  )}
                  <Button onClick={() => edit(p)}>Edit</Button>
                  <Button variant="danger" onClick={() => setRemoving(p)}>
                    Remove
                  </Button>
                </div>
              </article>
            );
          })}
        </div>
        <ServerForm editing={editing} onDone={() => edit(null)} existing={list} focus={focus} />
      </div>
      <ConfirmDialog
        open={removing !== null}
        danger
        title={`Remove ${removing?.name ?? ''}?`}
        confirmLabel="Remove"
        busy={remove.isPending}
        onCancel={() => setRemoving(null)}
        onConfirm={() => removing && remove.mutate(removing)}
      >
        <p>
          The profile and its stored token are deleted from this computer{conn?.profileId === removing?.id ? ', and the console disconnects' : ''}. The relay is
          not changed.
        </p>
      </ConfirmDialog>
    </div>
  );
}
