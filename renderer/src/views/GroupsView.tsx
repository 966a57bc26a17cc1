/**
 * Trusted IP groups: every group with its entries (address, comment, expiry, added by/at), what each group is used
 * for (exempt from the per-IP limits, allowed to relay), adding an address with inline validation (the shared
 * parser) and an expiry, removing one (confirmed, with Undo), and expired entries shown as such.
 */
import { useMemo, useState } from 'react';
import type { Config, GroupEntry } from '../../../shared/config.ts';
import {
  Badge,
  Button,
  Checkbox,
  ConfirmDialog,
  EmptyState,
  ErrorBox,
  Field,
  ReadOnlyNotice,
  RequireConnection,
  TextField,
  ViewHeader,
  fmtDateTime,
  useToast,
} from '../components/index.ts';
import { explainError, useCanEdit, useRelayMutation, useRelayQuery } from '../hooks.ts';
import { checkAddress } from './parts/address.ts';
import { ExpiryPicker, type ExpiryValue } from './parts/ExpiryPicker.tsx';
import { expiryFor, expiryState } from './parts/expiry.ts';
import { useNow } from './parts/hooks.ts';
import './views.css';

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;
export function GroupsView(_props: Record<string, unknown>) {
  return (
    <RequireConnection what="the trusted groups">
      <Groups />
    </RequireConnection>
  );
}

function Groups() {
  const { why } = useCanEdit();
  const q = useRelayQuery('config.get', {});
  const now = useNow(30_000);
  const [filter, setFilter] = useState('');
  const [hideExpired, setHideExpired] = useState(false);
  const [newGroups, setNewGroups] = useState<string[]>([]);
  const [newName, setNewName] = useState('');

  if (q.isError) return <ErrorBox title="Could not load the groups">{explainError(q.error)}</ErrorBox>;
  if (!q.data) return <p className="muted">Loading the groups…</p>;
  const c = q.data.config;
  const names = [...Object.keys(c.groups), ...newGroups.filter((g) => !(g in c.groups))];
  const nameError = newName.trim() === '' ? null : !GROUP_NAME.test(newName.trim()) ? 'group names are 1-64 letters, digits, space, "_", "." or "-", starting with a letter or digit' : names.includes(newName.trim()) ? 'a group with this name exists' : null;

  return (
    <div className="rw-view groups-view">
      <ViewHeader
        title="Trusted IP groups"
        subtitle={
          <>
            Addresses, networks (CIDR) and ranges. A group <strong>exempt from limits</strong> skips the per-IP limits on messages, connections and unknown
            recipients; a group that <strong>may relay</strong> can send to any domain and skips the DNS checks. Set which groups do what in Security options.
          </>
        }
      />
      <ReadOnlyNotice />
      <div className="toolbar">
        <input type="search" placeholder="Find an address or comment" aria-label="Find an address or comment" value={filter} onChange={(e) => setFilter(e.target.value)} />
        <Checkbox label="Hide expired entries" checked={hideExpired} onChange={setHideExpired} />
        <span className="spacer" />
        <form
          className="new-group"
          onSubmit={(e) => {
            e.preventDefault();
            if (nameError || !newName.trim()) return;
            setNewGroups((g) => [...g, newName.trim()]);
            setNewName('');
          }}
        >
          <TextField label="New group" value={newName} onChange={setNewName} error={nameError} placeholder="e.g. Office" disabledReason={why} inline />
          <Button type="submit" disabledReason={why ?? (nameError ? 'Fix the group name first.' : !newName.trim() ? 'Type a name for the group first.' : null)}>
            Create
          </Button>
        </form>
      </div>
      {names.length === 0 && (
        <EmptyState title="No groups yet">
          <p>Create a group (e.g. "Trusted" for the office network), then add addresses to it.</p>
        </EmptyState>
      )}
      {names.map((g) => (
        <GroupCard
          key={g}
          name={g}
          config={c}
          revision={q.data!.revision}
          entries={c.groups[g] ?? []}
          isNew={!(g in c.groups)}
          now={now}
          filter={filter.trim().toLowerCase()}
          hideExpired={hideExpired}
          why={why}
          onAdded={() => setNewGroups((xs) => xs.filter((x) => x !== g))}
        />
      ))}
    </div>
  );
}

interface GroupCardProps {
  name: string;
  config: Config;
  revision: number;
  entries: readonly GroupEntry[];
  isNew: boolean;
  now: number;
  filter: string;
  hideExpired: boolean;
  why: string | null;
  onAdded: () => void;
}

function GroupCard({ name, config, revision, entries, isNew, now, filter, hideExpired, why, onAdded }: GroupCardProps) {
  const toast = useToast();
  const remove = useRelayMutation('groups.removeEntry');
  const addBack = useRelayMutation('groups.addEntry');
  const cleanup = useRelayMutation('config.update');
  const [confirm, setConfirm] = useState<GroupEntry | null>(null);
  const [confirmCleanup, setConfirmCleanup] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const exemptIndex = config.limits.exemptGroups.indexOf(name);
  const relays = config.relay.allowGroups.includes(name);
  const withState = entries.map((e) => ({ e, x: expiryState(e.expiresAt, now) }));
  const expired = withState.filter((w) => w.x.expired);
  const shown = withState.filter(({ e, x }) => (!hideExpired || !x.expired) && (!filter || e.address.toLowerCase().includes(filter) || (e.comment ?? '').toLowerCase().includes(filter)));

  const doRemove = (e: GroupEntry) => {
    setError(null);
    remove.mutate(
      { group: name, address: e.address },
      {
        onSuccess: (r) => {
          setConfirm(null);
          toast.show({
            kind: 'success',
            message: `Removed ${r.removed.address} from "${name}".`,
            undo: () => addBack.mutateAsync({ group: name, address: r.removed.address, comment: r.removed.comment ?? null, expiresAt: r.removed.expiresAt ?? null }),
            undoneMessage: `${r.removed.address} is back in "${name}".`,
          });
        },
        onError: (err) => {
          setConfirm(null);
          setError(err);
        },
      },
    );
  };

  const doCleanup = () => {
    setError(null);
    const next = structuredClone(config);
    next.groups[name] = entries.filter((e) => !expiryState(e.expiresAt, Date.now()).expired);
    cleanup.mutate(
      { baseRevision: revision, config: next },
      {
        onSuccess: (r) => {
          setConfirmCleanup(false);
          toast.show({ kind: 'success', message: `Removed ${expired.length} expired entr${expired.length === 1 ? 'y' : 'ies'} from "${name}" (revision ${r.revision}).` });
        },
        onError: (err) => {
          setConfirmCleanup(false);
          setError(err);
        },
      },
    );
  };

  return (
    <section className="group-card" data-group={name} aria-labelledby={`group-${name}`}>
      <div className="group-head">
        <h2 id={`group-${name}`}>{name}</h2>
        {exemptIndex >= 0 && (
          <Badge tone="ok" title="In limits.exemptGroups: skips the per-IP limits">
            Exempt from limits{exemptIndex === 0 ? ' · "Trust this IP" adds here' : ''}
          </Badge>
        )}
        {relays && (
          <Badge tone="info" title="In relay.allowGroups: may relay to any domain, skips DNS checks">
            May relay
          </Badge>
        )}
        {exemptIndex < 0 && !relays && (
          <Badge tone="muted" title="Neither in limits.exemptGroups nor in relay.allowGroups">
            Not used by any rule
          </Badge>
        )}
        {isNew && <Badge tone="warn">New: saved when you add its first address</Badge>}
        <span className="spacer" />
        <span className="muted">
          {entries.length - expired.length} active{expired.length ? `, ${expired.length} expired` : ''}
        </span>
        {expired.length > 0 && (
          <Button small onClick={() => setConfirmCleanup(true)} disabledReason={why}>
            Remove expired…
          </Button>
        )}
      </div>
      {error !== null && (
        <div style={{ padding: '10px 14px 0' }}>
          <ErrorBox>{explainError(error)}</ErrorBox>
        </div>
      )}
      {entries.length === 0 ? (
        <p className="muted" style={{ padding: '10px 14px', margin: 0 }}>
          No addresses in this group yet. Add one below{exemptIndex === 0 ? ', or use "Trust this IP" in Live traffic or Clients' : ''}.
        </p>
      ) : shown.length === 0 ? (
        <p className="muted" style={{ padding: '10px 14px', margin: 0 }}>
          No entry matches the filter.
        </p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">Comment</th>
              <th scope="col">Expiry</th>
              <th scope="col">Added by</th>
              <th scope="col">Added</th>
              <th scope="col" className="num">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map(({ e, x }) => (
              <tr key={e.address} className={x.expired ? 'entry-expired' : ''} data-address={e.address} data-expired={x.expired || undefined}>
                <th scope="row">
                  <span className="mono entry-address">{e.address}</span>
                </th>
                <td>{e.comment || <span className="faint">—</span>}</td>
                <td title={e.expiresAt ? fmtDateTime(e.expiresAt) : undefined}>
                  {x.expired ? <Badge tone="muted">{x.text}</Badge> : <span className={x.soon ? 'entry-soon' : ''}>{x.text}</span>}
                </td>
                <td>{e.addedBy ?? <span className="faint">—</span>}</td>
                <td>{e.addedAt ? fmtDateTime(e.addedAt) : <span className="faint">—</span>}</td>
                <td className="actions">
                  <Button small variant="danger" onClick={() => setConfirm(e)} disabledReason={why} aria-label={`Remove ${e.address} from ${name}`}>
                    Remove
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <AddEntry group={name} entries={entries} why={why} onAdded={onAdded} />

      <ConfirmDialog
        open={confirm !== null}
        danger
        title={`Remove ${confirm?.address ?? ''} from "${name}"?`}
        confirmLabel="Remove"
        busy={remove.isPending}
        onCancel={() => setConfirm(null)}
        onConfirm={() => confirm && doRemove(confirm)}
      >
        <p>Takes effect at once, for open connections too:</p>
        <ul>
          {exemptIndex >= 0 && <li>clients at this address are counted against the per-IP limits again;</li>}
          {relays && <li>they may no longer relay mail to other domains unless they log in;</li>}
          {exemptIndex < 0 && !relays && <li>this group is not used by any rule, so nothing changes for mail;</li>}
        </ul>
        {confirm?.comment && <p>Comment: "{confirm.comment}"</p>}
        <p className="muted">You can undo this from the message that follows.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirmCleanup}
        title={`Remove ${expired.length} expired entr${expired.length === 1 ? 'y' : 'ies'} from "${name}"?`}
        confirmLabel="Remove expired"
        busy={cleanup.isPending}
        onCancel={() => setConfirmCleanup(false)}
        onConfirm={doCleanup}
      >
        <p>They no longer match any client; this only tidies the list. All are removed in one change, or none if someone changed the configuration meanwhile.</p>
        <ul>
          {expired.slice(0, 10).map(({ e, x }) => (
            <li key={e.address}>
              <span className="mono">{e.address}</span> {e.comment ? `("${e.comment}") ` : ''}
              <span className="muted">{x.text}</span>
            </li>
          ))}
          {expired.length > 10 && <li>and {expired.length - 10} more</li>}
        </ul>
      </ConfirmDialog>
    </section>
  );
}

function AddEntry({ group, entries, why, onAdded }: { group: string; entries: readonly GroupEntry[]; why: string | null; onAdded: () => void }) {
  const toast = useToast();
  const add = useRelayMutation('groups.addEntry');
  const [address, setAddress] = useState('');
  const [comment, setComment] = useState('');
  const [expiry, setExpiry] = useState<ExpiryValue>({ preset: 'never', date: '' });
  const [error, setError] = useState<unknown>(null);
  const [touched, setTouched] = useState(false);
  const check = useMemo(() => checkAddress(address, entries.map((e) => e.address)), [address, entries]);
  const exp = expiryFor(expiry.preset, expiry.date, Date.now());
  const addressError = check.state === 'invalid' && (touched || address.length > 3) ? check.error : null;
  const reason = why ?? (check.state === 'empty' ? 'Type an address, a CIDR or a range first.' : check.state === 'invalid' ? 'Fix the address first.' : !exp.ok ? 'Fix the expiry first.' : null);

  const submit = () => {
    setTouched(true);
    if (check.state !== 'ok' || !exp.ok || why) return;
    setError(null);
    add.mutate(
      { group, address: check.text, comment: comment.trim() || null, expiresAt: exp.expiresAt },
      {
        onSuccess: (r) => {
          setAddress('');
          setComment('');
          setTouched(false);
          onAdded();
          toast.show({
            kind: 'success',
            message: r.updated ? `Updated ${r.entry.address} in "${r.group}".` : `Added ${r.entry.address} to "${r.group}"${r.created ? ' (new group)' : ''}.`,
          });
        },
        onError: setError,
      },
    );
  };

  return (
    <form
      className="add-entry"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
      aria-label={`Add an address to ${group}`}
    >
      <Field
        label="Address, CIDR or range"
        error={addressError}
        hint={
          check.state === 'ok' ? (
            <span className={check.duplicate ? 'entry-soon' : 'canonical'}>
              {check.duplicate ? `already in "${group}": adding updates its comment and expiry` : `saved as ${check.text}: ${check.covers}`}
            </span>
          ) : (
            'e.g. 192.0.2.7, 192.0.2.0/24, 2001:db8::/48, 192.0.2.10-192.0.2.20'
          )
        }
      >
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            className="mono"
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            onBlur={() => setTouched(true)}
            aria-invalid={invalid || undefined}
            aria-describedby={describedBy}
            disabled={Boolean(why)}
            title={why ?? undefined}
            data-disabled-reason={why ?? undefined}
            placeholder="192.0.2.0/24"
            autoComplete="off"
            spellCheck={false}
          />
        )}
      </Field>
      <TextField label="Comment" value={comment} onChange={setComment} placeholder="who or what it is" maxLength={500} disabledReason={why} />
      <ExpiryPicker value={expiry} onChange={setExpiry} error={!exp.ok && (touched || expiry.date) ? exp.error : null} why={why} />
      <div className="add-button">
        <Button type="submit" variant="primary" busy={add.isPending} disabledReason={reason}>
          Add to {group}
        </Button>
      </div>
      {error !== null && (
        <div style={{ gridColumn: '1 / -1' }}>
          <ErrorBox>{explainError(error)}</ErrorBox>
        </div>
      )}
    </form>
  );
}
