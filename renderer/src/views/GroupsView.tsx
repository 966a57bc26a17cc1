/**
 * Trusted IP groups: every group with its entries (address, comment, expiry, added by/at), what each group is used
 * for (exempt from the per-IP limits, allowed to relay), adding an address with inline validation (the shared
 * parser) and an expiry, removing one (confirmed, with Undo), and expired entries shown as such.
 *
 * Adding is where mistakes are expensive, so it says what it will do before the click: a wide entry (more than a /16
 * of IPv4, wider than an IPv6 /48, see parts/address.ts) in a group that may relay or is exempt from limits is shown in
 * warning colours and asks for confirmation naming the consequence (0.0.0.0/0 in "Trusted", an open relay, is not
 * offered at all: the relay refuses it); an
 * address already in the group says what it is now and what Replace makes it, and the toast offers Undo.
 */
import { useMemo, useState } from 'react';
import type { Config, GroupEntry } from '../../../shared/config.ts';
import { parseAddressSpec, type AddressSpec } from '../../../shared/ip.ts';
import {
  ACTIONS,
  Badge,
  Button,
  Checkbox,
  ConfirmDialog,
  EmptyState,
  ErrorBox,
  Field,
  ReadOnlyNotice,
  RequireConnection,
  TableHead,
  TextField,
  ViewHeader,
  fmtDateTime,
  useToast,
} from '../components/index.ts';
import { explainError, useCanEdit, useProfileKey, useRelayMutation, useRelayQuery } from '../hooks.ts';
import { checkAddress, checkGroupName, replaceNote, wideEntryWarning, type GroupRoles } from './parts/address.ts';
import { ExpiryPicker, type ExpiryValue } from './parts/ExpiryPicker.tsx';
import { expiryFor, expiryState } from './parts/expiry.ts';
import { useNow } from './parts/hooks.ts';
import './views.css';

export function GroupsView(_props: Record<string, unknown>) {
  // a component of its own per server: nothing it holds (the filter, groups created but not filled yet) carries over to another
  const profile = useProfileKey();
  return (
    <RequireConnection what="the list of trusted IP groups">
      <Groups key={profile} />
    </RequireConnection>
  );
}

function Groups() {
  const { why } = useCanEdit();
  const q = useRelayQuery('config.get', {});
  // refreshed at each entry's expiry too, so an entry shows as expired (and the counts move) when the relay stops matching it
  const deadlines = q.data ? Object.values(q.data.config.groups).flatMap((es) => es.flatMap((e) => (e.expiresAt ? [Date.parse(e.expiresAt)] : []))) : [];
  const now = useNow(30_000, deadlines);
  const [filter, setFilter] = useState('');
  const [hideExpired, setHideExpired] = useState(false);
  const [newGroups, setNewGroups] = useState<string[]>([]);
  const [newName, setNewName] = useState('');

  if (q.isError) return <ErrorBox title="Could not load the groups">{explainError(q.error)}</ErrorBox>;
  if (!q.data) return <p className="muted">Loading the groups…</p>;
  const c = q.data.config;
  const names = [...Object.keys(c.groups), ...newGroups.filter((g) => !(g in c.groups))];
  const { error: nameError, warning: nameWarning } = checkGroupName(newName, names);

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
        <input type="search" placeholder="Address or comment" aria-label="Find an address or comment" value={filter} onChange={(e) => setFilter(e.target.value)} />
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
            {nameWarning ? 'Create anyway' : 'Create'}
          </Button>
        </form>
      </div>
      {nameWarning && (
        <p className="notice notice-warn" role="note" data-testid="group-name-warning">
          {nameWarning}
        </p>
      )}
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
  // what the groups that may relay hold now: an add is checked against the relay's open-relay limit on all of them
  const relayed = useMemo(
    () =>
      config.relay.allowGroups.flatMap((g) =>
        (config.groups[g] ?? []).flatMap((e) => {
          const r = parseAddressSpec(e.address);
          return r.ok ? [r.spec] : [];
        }),
      ),
    [config],
  );
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
        // (scrolls sideways rather than cutting columns off: the card hides what overflows its rounded corners)
        <div className="group-table-wrap">
          <table className="table">
            <TableHead columns={['Address', 'Comment', 'Expiry', 'Added by', 'Added', { ...ACTIONS, className: undefined }]} />
            <tbody>
              {shown.map(({ e, x }) => (
                <tr key={e.address} className={x.expired ? 'entry-expired' : ''} data-address={e.address} data-expired={x.expired || undefined}>
                  <th scope="row">
                    <span className="mono entry-address">{e.address}</span>
                  </th>
                  <td className="entry-comment">{e.comment || <span className="faint">—</span>}</td>
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
        </div>
      )}
      <AddEntry group={name} entries={entries} roles={{ relays, exempt: exemptIndex >= 0 }} relayed={relayed} now={now} why={why} onAdded={onAdded} />

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
          {exemptIndex >= 0 && <li>Clients {confirm && /[/-]/.test(confirm.address) ? 'in this network' : 'at this address'} are counted against the per-IP limits again.</li>}
          {relays && <li>They may no longer relay mail to other domains unless they log in.</li>}
          {exemptIndex < 0 && !relays && <li>This group is not used by any rule, so nothing changes for mail.</li>}
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

interface AddEntryProps {
  group: string;
  entries: readonly GroupEntry[];
  roles: GroupRoles;
  /** the entries of every group that may relay, parsed */
  relayed: readonly AddressSpec[];
  now: number;
  why: string | null;
  onAdded: () => void;
}

function AddEntry({ group, entries, roles, relayed, now, why, onAdded }: AddEntryProps) {
  const toast = useToast();
  const add = useRelayMutation('groups.addEntry');
  const undoAdd = useRelayMutation('groups.removeEntry');
  const undoReplace = useRelayMutation('groups.addEntry');
  const [address, setAddress] = useState('');
  const [comment, setComment] = useState('');
  const [expiry, setExpiry] = useState<ExpiryValue>({ preset: 'never', date: '' });
  const [error, setError] = useState<unknown>(null);
  const [touched, setTouched] = useState(false);
  const [confirmWide, setConfirmWide] = useState(false);
  const check = useMemo(() => checkAddress(address, entries), [address, entries]);
  const exp = expiryFor(expiry.preset, expiry.date, Date.now());
  const addressError = check.state === 'invalid' && (touched || address.length > 3) ? check.error : null;
  const wide = check.state === 'ok' ? wideEntryWarning(check.spec, group, roles, relayed) : null;
  const prev = check.state === 'ok' ? check.existingEntry : null;
  const note = prev ? replaceNote(group, prev, exp.ok ? { comment: comment.trim() || null, expiresAt: exp.expiresAt } : null, now) : null;
  const reason =
    why ??
    (check.state === 'empty'
      ? 'Type an address, a CIDR or a range first.'
      : check.state === 'invalid'
        ? 'Fix the address first.'
        : wide?.refused
          ? wide.refused
          : !exp.ok
            ? 'Fix the expiry first.'
            : note && !note.changes
              ? `It is already in "${group}" with this comment and expiry.`
              : null);

  const submit = () => {
    setTouched(true);
    // (the moment of the click: a date that was a minute ahead when typed may have passed since the last render)
    const exp = expiryFor(expiry.preset, expiry.date, Date.now());
    if (check.state !== 'ok' || !exp.ok || why || wide?.refused || (note && !note.changes)) return;
    // a wide entry in a group a rule uses is confirmed first, naming what it lets through
    if (wide && !confirmWide) {
      setConfirmWide(true);
      return;
    }
    setError(null);
    // the entry as the admin saw it, for Undo: groups.addEntry replaces its comment and expiry
    const before = prev ? { comment: prev.comment ?? null, expiresAt: prev.expiresAt ?? null } : null;
    add.mutate(
      { group, address: check.text, comment: comment.trim() || null, expiresAt: exp.expiresAt },
      {
        onSuccess: (r) => {
          setConfirmWide(false);
          setAddress('');
          setComment('');
          // a date belongs to the entry just added: kept, the next entry got it too, soon a moment in the past ("1 hour",
          // "1 day" count from each click and stay)
          if (expiry.preset === 'date') setExpiry({ preset: 'never', date: '' });
          setTouched(false);
          onAdded();
          const a = r.entry.address;
          if (!r.updated) {
            toast.show({
              kind: 'success',
              message: `Added ${a} to "${r.group}"${r.created ? ' (new group)' : ''}.`,
              undo: () => undoAdd.mutateAsync({ group: r.group, address: a }),
              undoneMessage: `${a} is out of "${r.group}" again.`,
            });
          } else if (r.previous || before) {
            // what the relay replaced (exact, even if the entry changed elsewhere since this view last refreshed);
            // from a relay that does not say, the entry as the admin saw it
            const was = r.previous ? { comment: r.previous.comment ?? null, expiresAt: r.previous.expiresAt ?? null } : before!;
            toast.show({
              kind: 'success',
              message: `Replaced the comment and expiry of ${a} in "${r.group}".`,
              undo: () => undoReplace.mutateAsync({ group: r.group, address: a, comment: was.comment, expiresAt: was.expiresAt }),
              undoneMessage: `${a} in "${r.group}" has its previous comment and expiry again.`,
            });
          } else {
            // someone else added it between the last refresh and the click: what it had is not known here
            toast.show({ kind: 'warning', message: `${a} was already in "${r.group}" (added meanwhile, elsewhere): its comment and expiry were replaced with yours.` });
          }
        },
        onError: (err) => {
          setConfirmWide(false);
          setError(err);
        },
      },
    );
  };

  return (
    <>
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
              <>
                {note ? (
                  <span className="entry-soon" data-testid="replace-note">
                    {note.text}
                  </span>
                ) : (
                  <span className={wide ? 'entry-soon' : 'canonical'}>{`saved as ${check.text}: ${check.covers}`}</span>
                )}
                {wide && (
                  <span className={wide.relays ? undefined : 'entry-soon'} style={{ display: 'block', fontWeight: 600, ...(wide.relays ? { color: 'var(--bad)' } : {}) }} data-testid="wide-warning" role="note">
                    {wide.hint}
                  </span>
                )}
              </>
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
          <Button type="submit" variant={wide?.relays ? 'danger' : 'primary'} busy={add.isPending && !confirmWide} disabledReason={reason}>
            {prev ? `Replace in ${group}` : `Add to ${group}`}
          </Button>
        </div>
        {error !== null && (
          <div style={{ gridColumn: '1 / -1' }}>
            <ErrorBox>{explainError(error)}</ErrorBox>
          </div>
        )}
      </form>
      <ConfirmDialog
        open={confirmWide && wide !== null}
        danger
        title={wide?.title ?? ''}
        confirmLabel={wide?.confirmLabel ?? 'Add anyway'}
        busy={add.isPending}
        onCancel={() => setConfirmWide(false)}
        onConfirm={submit}
      >
        {wide?.consequences.map((c) => (
          <p key={c}>{c}</p>
        ))}
        <p className="muted">
          Adding to "{group}" takes effect at once, for open connections too. You can undo it from the message that follows.
        </p>
      </ConfirmDialog>
    </>
  );
}
