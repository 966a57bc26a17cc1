/**
 * Live traffic: the live event store in a virtualised table (newest first), filters (IP, text, kind, rejections only),
 * pause that keeps ingesting and counts what is new, the session detail of a clicked row, and on rejected rows the
 * one-click "Trust this IP" (toast with Undo) and "Everything from this IP". What trusting does with the current config
 * (skip the per-IP limits; relay to any domain when the trust group may relay) is said before the click; from a "Relay
 * access denied" row, where the click itself would grant relaying, it asks first. Rows of addresses trusted now say so
 * instead of offering the trust. When a (re)connect's backlog was cut (more than the relay sends at once, backlogMax,
 * since the console's last event), a notice names the events not shown and where they are.
 */
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import type { KeyboardEvent as ReactKeyboardEvent, PointerEvent as ReactPointerEvent } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { EVENT_KINDS, type RelayEvent } from '../../../shared/events.ts';
import { Badge, Button, Checkbox, ConfirmDialog, ErrorBox, EmptyState, fmtAgo, fmtCount, fmtDateTime, fmtTime, fmtTimeMs, ruleLabel, type Navigate } from '../components/index.ts';
import { explainError, useCanEdit, useConnection, useRelayQuery } from '../hooks.ts';
import { compileFilter, isEmptyFilter } from '../state/filter.ts';
import { breakNotice, gapNotice } from '../state/gaps.ts';
import { FilteredView, liveStore, useLiveVersion } from '../state/live.ts';
import { liveUi, useLiveUi } from '../state/liveUi.ts';
import { kindClass, kindLabel, refusedTo, summarize } from '../state/summary.ts';
import {
  RELAY_TRUST_DEFAULT,
  TRUST_EXPIRIES,
  asksBeforeTrust,
  clientNowLine,
  trustHelps,
  groupMatcher,
  trustEffects,
  trustWarning,
  trustedEntry,
  useTrustIp,
  type TrustEffects,
  type TrustExpiry,
} from '../state/trust.ts';
import './views.css';

const ROW_H = 28;
/** how long the rows stay held after the pointer last moved over them */
const HOLD_MS = 2500;

interface Rows {
  length: number;
  /** row i, 0 = newest */
  get(i: number): RelayEvent | undefined;
}

interface RowProps {
  e: RelayEvent;
  top: number;
  selected: boolean;
  onSelect: (e: RelayEvent) => void;
  onTrust: (e: RelayEvent) => void;
  onOnlyIp: (ip: string) => void;
  trustDisabled: string | null;
  trustPending: boolean;
  /** the button's tooltip: for how long, and what trusting does with the current config */
  trustTitle: string;
  /** the address is trusted now (an exempt group's live entry): words for the badge's tooltip; null: not trusted */
  trustedAs: string | null;
}

const Row = memo(function Row({ e, top, selected, onSelect, onTrust, onOnlyIp, trustDisabled, trustPending, trustTitle, trustedAs }: RowProps) {
  const rejected = e.kind === 'rejected';
  const cls = `live-row kind-${e.kind}${rejected && !e.enforced ? ' monitor' : ''}${selected ? ' selected' : ''}`;
  return (
    <div
      className={cls}
      style={{ transform: `translateY(${top}px)` }}
      role="row"
      aria-selected={selected}
      data-event-id={e.id}
      data-kind={e.kind}
      data-ip={e.ip ?? ''}
      onPointerDown={(ev) => {
        // select on press: in a fast stream the row under the pointer at press time is the one meant
        if (ev.button === 0) onSelect(e);
      }}
    >
      <span className="cell-time" role="cell" title={fmtDateTime(e.at)}>
        {fmtTimeMs(e.at)}
      </span>
      <span role="cell">
        <span className={`kind ${kindClass(e)}`}>{kindLabel(e)}</span>
      </span>
      <span className="cell-ip" role="cell">
        {e.ip ?? '—'}
      </span>
      <span className="cell-summary" role="cell">
        {rejected ? (
          <span className="summary-text" title={`${e.rule}: ${e.to ? `${refusedTo(e)}: ` : ''}${e.code} ${e.text}`}>
            <strong>{ruleLabel(e.rule)}</strong>
            {e.to && <span className="refused-to"> · {refusedTo(e)}</span>} · <span className="mono">{e.code}</span> {e.text}
          </span>
        ) : (
          <span className="summary-text">{summarize(e)}</span>
        )}
        {rejected && e.ip && (
          <span className="row-actions" onPointerDown={(ev) => ev.stopPropagation()}>
            {!trustHelps(e) ? null : trustedAs ? (
              <span className="row-trusted" title={trustedAs} data-testid="row-trusted">
                <Badge tone="ok">trusted</Badge>
              </span>
            ) : (
              <Button small variant="primary" disabledReason={trustDisabled} busy={trustPending} onClick={() => onTrust(e)} title={trustTitle} data-action="trust">
                {asksBeforeTrust(e) ? 'Trust this IP…' : 'Trust this IP'}
              </Button>
            )}
            <Button small variant="ghost" className="row-secondary" onClick={() => onOnlyIp(e.ip!)} title={`Show everything from ${e.ip}`} data-action="only-ip">
              Everything from this IP
            </Button>
          </span>
        )}
      </span>
    </div>
  );
});

function SessionPanel({
  event,
  onClose,
  onTrust,
  onOnlyIp,
  trustDisabled,
  trustPending,
  expiry,
  setExpiry,
  effects,
  trusted,
}: {
  event: RelayEvent;
  onClose: () => void;
  onTrust: (e: RelayEvent) => void;
  onOnlyIp: (ip: string) => void;
  trustDisabled: string | null;
  trustPending: boolean;
  expiry: TrustExpiry;
  setExpiry: (e: TrustExpiry) => void;
  /** what trusting does with the current config; null: the config is not read yet */
  effects: TrustEffects | null;
  /** the exempt-group entry that trusts the event's address now, or null */
  trusted: { group: string; entry: { expiresAt?: string | null; addedAt?: string | null } } | null;
}) {
  const sid = event.sessionId;
  const older = useRelayQuery('events.query', { sessionId: sid ?? '', order: 'asc', limit: 1000 }, { enabled: sid !== null, staleTime: 2_000 });
  const client = useRelayQuery('clients.list', { ip: event.ip ?? '', limit: 1 }, { enabled: event.ip !== null, staleTime: 2_000 });
  // the store's events of this session, refreshed at most twice a second (not on every frame of a fast stream), and
  // only when the store changed: a paused or idle stream costs no re-render
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let seen = liveStore().getVersion();
    const t = setInterval(() => {
      const v = liveStore().getVersion();
      if (v !== seen) {
        seen = v;
        setTick((x) => x + 1);
      }
    }, 500);
    return () => clearInterval(t);
  }, []);
  const events = useMemo(() => {
    if (sid === null) return [event];
    const byId = new Map<number, RelayEvent>();
    for (const e of older.data?.events ?? []) byId.set(e.id, e);
    for (const e of liveStore().session(sid)) byId.set(e.id, e);
    byId.set(event.id, event);
    return [...byId.values()].sort((a, b) => a.id - b.id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [sid, event, older.data, tick]);
  const info = client.data?.clients[0];
  const rej = event.kind === 'rejected' ? event : null;
  return (
    <aside className="session-panel" aria-label="Session detail" data-testid="session-panel">
      <header>
        <div>
          <h2 style={{ margin: 0 }}>{sid ? 'SMTP session' : 'Event'}</h2>
          <div className="faint mono" style={{ fontSize: 12 }}>
            {sid ?? `#${event.id}`} {event.ip && <>· {event.ip}</>}
          </div>
        </div>
        <button type="button" className="dialog-close" aria-label="Close the session detail" onClick={onClose}>
          ×
        </button>
      </header>
      <div className="panel-body">
        <div className="panel-facts">
          {rej && (
            <div className="reject-box">
              <div>
                <strong>{ruleLabel(rej.rule)}</strong> <span className="faint mono">({rej.rule})</span>{' '}
                {rej.enforced ? <Badge tone="bad">rejected</Badge> : <Badge tone="warn">monitor: would have rejected</Badge>}
              </div>
              {rej.to && (
                <div style={{ marginTop: 4 }} data-testid="reject-to">
                  <span className="faint">Refused recipient: </span>
                  <span className="mono">{rej.to}</span>
                </div>
              )}
              <div style={{ marginTop: 4 }}>
                <span className="code">{rej.code}</span> {rej.text}
              </div>
              <div className="faint" style={{ fontSize: 12, marginTop: 4 }}>
                at the {rej.stage.toUpperCase()} stage, {fmtDateTime(rej.at)}
              </div>
              {rej.dns && (
                <div className="reject-dns" data-testid="reject-dns" style={{ fontSize: 12, marginTop: 4 }}>
                  <span className="faint">Resolver: </span>
                  <span className="mono">{rej.dns}</span>
                </div>
              )}
              {rej.ip && !trusted && effects && trustHelps(rej) && (
                <p className={`trust-effect${effects.relays ? ' trust-effect-relay' : ''}`} data-testid="trust-effect">
                  {trustWarning(rej.ip, effects)}
                  {asksBeforeTrust(rej) ? ' You will be asked to confirm.' : ''}
                </p>
              )}
              {rej.ip && (
                <div className="trust-row">
                  {!trustHelps(rej) ? (
                    <span className="muted" data-testid="trust-no-help">
                      Trusting {rej.ip} would not change this: the rule applies to every client.
                    </span>
                  ) : trusted ? (
                    <span data-testid="panel-trusted">
                      <Badge tone="ok">trusted</Badge>{' '}
                      <span className="muted">
                        in "{trusted.group}"{trusted.entry.expiresAt ? ` until ${fmtDateTime(trusted.entry.expiresAt)}` : ', no expiry'}
                      </span>
                    </span>
                  ) : asksBeforeTrust(rej) ? (
                    <Button variant="primary" small disabledReason={trustDisabled} busy={trustPending} onClick={() => onTrust(rej)} data-action="trust">
                      Trust this IP…
                    </Button>
                  ) : (
                    <>
                      <TrustExpirySelect label="How long to trust" value={expiry} onChange={setExpiry} disabled={Boolean(trustDisabled)} />
                      <Button variant="primary" small disabledReason={trustDisabled} busy={trustPending} onClick={() => onTrust(rej)} data-action="trust">
                        Trust this IP
                      </Button>
                    </>
                  )}
                  <Button small onClick={() => onOnlyIp(rej.ip!)}>
                    Everything from this IP
                  </Button>
                </div>
              )}
            </div>
          )}
          {info && (
            <p className="muted" style={{ fontSize: 12.5, margin: '0 0 6px' }} data-testid="client-info">
              {clientNowLine(info, trusted?.entry.addedAt ? Date.parse(trusted.entry.addedAt) : null, event.at)}
              {info.trusted ? (
                <>
                  , <Badge tone="ok">trusted</Badge>
                  {info.trustedBy ? ` in "${info.trustedBy.group}"${info.trustedBy.expiresAt ? ` until ${fmtDateTime(info.trustedBy.expiresAt)}` : ''}` : ''}
                </>
              ) : null}
              {info.blockedUntil ? (
                <>
                  , <Badge tone="bad">blocked {fmtAgo(info.blockedUntil)}</Badge>
                </>
              ) : null}
              .
            </p>
          )}
          {older.isError && <ErrorBox>Older events of this session could not be loaded: {explainError(older.error)}</ErrorBox>}
        </div>
        <div className="panel-events">
          <h3>
            {events.length} event{events.length === 1 ? '' : 's'}
            {older.isFetching && <span className="faint"> · loading history…</span>}
          </h3>
          <ol className="session-events">
            {events.map((e) => (
              <li key={e.id} className={e.id === event.id ? 'is-selected' : undefined}>
                <span className="cell-time">{fmtTimeMs(e.at)}</span>
                <span>
                  <span className={`kind ${kindClass(e)}`}>{kindLabel(e)}</span>
                </span>
                <span className="ev-text">{summarize(e)}</span>
              </li>
            ))}
          </ol>
        </div>
      </div>
    </aside>
  );
}

export function LiveView({ initialIp }: { navigate?: Navigate; initialIp?: string }) {
  const store = liveStore();
  const version = useLiveVersion(store);
  const ui = useLiveUi();
  const conn = useConnection();
  const { canEdit, why } = useCanEdit();
  const { trust, pending } = useTrustIp();
  // kept in the live UI state, not here: the choice holds when the user goes to another view and comes back
  const expiry = ui.trustExpiry;
  const [selected, setSelected] = useState<RelayEvent | null>(null);
  const filterRef = useRef<HTMLInputElement>(null);
  const scrollRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (initialIp !== undefined) liveUi.setFilter({ ip: initialIp });
  }, [initialIp]);
  useEffect(() => {
    if (ui.focusRequest > 0) {
      filterRef.current?.focus();
      filterRef.current?.select();
    }
  }, [ui.focusRequest]);

  const predicate = useMemo(() => compileFilter(ui.filter), [ui.filter]);
  // the live rows, kept up to date incrementally
  const view = useMemo(() => new FilteredView(store, predicate), [store, predicate]);
  const liveLength = useMemo(() => view.sync(), [view, version]);

  // Paused (Space, Ctrl+P, the button) or held (the pointer is on the rows, so they stay still under a fast stream and
  // can be clicked): a frozen copy of the rows as last shown; the store keeps ingesting and we count what is new.
  const [hover, setHover] = useState(false);
  const [scrolledAway, setScrolledAway] = useState(0);
  const holding = ui.paused || hover;
  const renderedEnd = useRef(store.end);
  const wasPaused = useRef(ui.paused);
  const unfreeze = useRef<{ end: number; explicit: boolean } | null>(null);
  const [frozen, setFrozen] = useState<{ events: RelayEvent[]; end: number; at: number } | null>(null);
  useEffect(() => {
    const explicitResume = wasPaused.current && !ui.paused;
    wasPaused.current = ui.paused;
    if (holding && !frozen) setFrozen({ events: store.toArray(renderedEnd.current), end: renderedEnd.current, at: Date.now() });
    if (!holding && frozen) {
      // applied once the live rows are rendered (layout effect below)
      unfreeze.current = { end: frozen.end, explicit: explicitResume };
      setFrozen(null);
    }
  }, [holding, ui.paused, frozen, store]);
  if (!frozen) renderedEnd.current = store.end;
  // the store started over (another relay, or this one restarted with fresh ids): what was selected or held still
  // belongs to the old stream, whose ids the new one reuses
  const epoch = store.epoch;
  const seenEpoch = useRef(epoch);
  useEffect(() => {
    if (seenEpoch.current === epoch) return;
    seenEpoch.current = epoch;
    setSelected(null);
    setScrolledAway(0);
    setFrozen((f) => (f ? { events: [], end: store.start, at: Date.now() } : f));
  }, [epoch, store]);
  const frozenRows = useMemo(() => (frozen ? (predicate ? frozen.events.filter(predicate) : frozen.events) : null), [frozen, predicate]);
  const newWhileHeld = frozen ? view.countFrom(frozen.end) : 0;

  const rows: Rows = useMemo(() => {
    if (frozenRows) return { length: frozenRows.length, get: (i) => frozenRows[frozenRows.length - 1 - i] };
    return { length: liveLength, get: (i) => view.row(i) };
    // version: the live view's rows change with the store
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [frozenRows, view, liveLength, version]);

  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_H,
    overscan: 8,
    // keys by position (the default): the virtualizer then measures 50,000 rows only when their number changes, not
    // on every frame, and React updates the row elements in place as the stream moves through them
  });

  // live and scrolled down: keep the rows under the user's eyes still while new ones arrive on top
  const topSeq = useRef<number>(-1);
  useLayoutEffect(() => {
    if (frozenRows) {
      topSeq.current = -1;
      return;
    }
    const el = scrollRef.current;
    const u = unfreeze.current;
    if (u) {
      unfreeze.current = null;
      // Resume shows the newest; the pointer leaving keeps the rows one was looking at in place
      if (el && el.scrollTop > 0) {
        if (u.explicit) el.scrollTop = 0;
        else {
          const added = view.countFrom(u.end);
          el.scrollTop += added * ROW_H;
          setScrolledAway((n) => n + added);
        }
      }
      topSeq.current = liveLength > 0 ? view.seqAt(0) : -1;
      return;
    }
    if (topSeq.current < 0) {
      topSeq.current = liveLength > 0 ? view.seqAt(0) : -1;
      return;
    }
    const newest = liveLength > 0 ? view.seqAt(0) : -1;
    if (el && topSeq.current >= 0 && el.scrollTop > 0 && newest > topSeq.current) {
      const added = view.countFrom(topSeq.current + 1);
      el.scrollTop += added * ROW_H;
      setScrolledAway((n) => n + added);
    }
    topSeq.current = newest;
  }, [version, view, liveLength, frozenRows]);

  // hold the rows while the pointer really moves over them (a resting pointer lets the stream flow again after
  // HOLD_MS; Chromium's synthetic moves after a layout change have the same screen position and are ignored)
  const lastPos = useRef<{ x: number; y: number } | null>(null);
  const holdTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const onPointerMove = useCallback((e: ReactPointerEvent) => {
    const p = lastPos.current;
    if (p && p.x === e.screenX && p.y === e.screenY) return;
    lastPos.current = { x: e.screenX, y: e.screenY };
    setHover(true);
    if (holdTimer.current) clearTimeout(holdTimer.current);
    holdTimer.current = setTimeout(() => setHover(false), HOLD_MS);
  }, []);
  const onPointerLeave = useCallback(() => {
    if (holdTimer.current) clearTimeout(holdTimer.current);
    holdTimer.current = null;
    lastPos.current = null;
    setHover(false);
  }, []);
  useEffect(() => () => void (holdTimer.current && clearTimeout(holdTimer.current)), []);

  // keyboard: the table takes the focus; arrows move the selection, Escape closes the detail
  const onKeyDown = (ev: ReactKeyboardEvent) => {
    if (ev.key === 'Escape' && selected) {
      setSelected(null);
      ev.preventDefault();
      return;
    }
    if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
    ev.preventDefault();
    if (rows.length === 0) return;
    // where the selected row is now: a fast stream may have pushed it far below the drawn rows. Rows are newest first
    // and ids only grow within a stream (a new stream clears the selection), so ids fall with the index: a binary
    // search finds it wherever it is, in the drawn rows too
    let at = -1;
    if (selected) {
      let lo = 0;
      let hi = rows.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const id = rows.get(mid)?.id ?? -1;
        if (id === selected.id) {
          at = mid;
          break;
        }
        if (id > selected.id) lo = mid + 1;
        else hi = mid - 1;
      }
    }
    const next = at < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, at + (ev.key === 'ArrowDown' ? 1 : -1)));
    const e = rows.get(next);
    if (e) {
      setSelected(e);
      virtualizer.scrollToIndex(next, { align: 'auto' });
    }
  };

  const onScroll = useCallback(() => {
    if (scrollRef.current && scrollRef.current.scrollTop === 0) setScrolledAway(0);
  }, []);
  const toTop = () => {
    if (scrollRef.current) scrollRef.current.scrollTop = 0;
    setScrolledAway(0);
  };

  const onSelect = useCallback((e: RelayEvent) => setSelected((s) => (s?.id === e.id ? null : e)), []);
  const onOnlyIp = useCallback((ip: string) => liveUi.setFilter({ ip }), []);
  const expiryLabel = TRUST_EXPIRIES.find((x) => x.value === expiry)!.label;
  // what trusting does depends on the config (which group, whether it may relay), and whether an address is trusted
  // now is in it too: the config query every admin view shares, refetched on every change
  const cfg = useRelayQuery('config.get', {}, { staleTime: 5_000 }).data?.config;
  const effects = useMemo(() => (cfg ? trustEffects(cfg) : null), [cfg]);
  const matcher = useMemo(() => groupMatcher(cfg), [cfg]);
  // a relay-access rejection waiting for the user's confirmation, and the expiry chosen in that dialog
  const [confirming, setConfirming] = useState<{ event: RelayEvent; expiry: TrustExpiry } | null>(null);
  const onTrust = useCallback(
    (e: RelayEvent) => {
      if (!e.ip) return;
      if (asksBeforeTrust(e)) {
        // the click would let the address relay: ask first, with a bounded expiry (the user may still pick forever)
        setConfirming({ event: e, expiry: RELAY_TRUST_DEFAULT });
        return;
      }
      void trust(e.ip, expiry, e.kind === 'rejected' ? e.rule : undefined, effects);
    },
    [trust, expiry, effects],
  );
  const trustDisabled = canEdit ? null : why ?? null;
  const rowTrustTitle = (ip: string, e: RelayEvent) =>
    asksBeforeTrust(e) ? `Trust ${ip}… (asks first). ${effects ? trustWarning(ip, effects) : ''}` : `Trust ${ip} ${expiryLabel}. ${effects ? trustWarning(ip, effects) : ''}`;
  const trustedOf = (ip: string | null) => trustedEntry(matcher, cfg, ip, Date.now());

  // the counts (rate) move on when the stream stops too
  const [, setClock] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setClock((x) => x + 1), 1000);
    return () => clearInterval(t);
  }, []);

  // the stream's gaps (a reconnect's backlog the relay cut), and how long the relay keeps what they left out
  const gaps = store.gaps;
  const retention = cfg?.events.retentionDays ?? null;

  const f = ui.filter;
  const connected = conn?.status === 'connected';
  const rate = store.rate();
  const items = virtualizer.getVirtualItems();
  return (
    <div className="live" style={{ display: 'flex', flexDirection: 'column', minHeight: 0, flex: 1 }} data-testid="live-view">
      <div className="live-toolbar" role="search">
        <input
          className="ip-filter"
          type="search"
          placeholder="IP, CIDR or range"
          aria-label="Filter by IP address"
          value={f.ip}
          onChange={(e) => liveUi.setFilter({ ip: e.target.value })}
          spellCheck={false}
        />
        <input
          ref={filterRef}
          type="search"
          placeholder="Search text (Ctrl+F)"
          aria-label="Filter by text"
          value={f.text}
          onChange={(e) => liveUi.setFilter({ text: e.target.value })}
          spellCheck={false}
        />
        <select className="kind-filter" aria-label="Filter by kind" value={f.kind} onChange={(e) => liveUi.setFilter({ kind: e.target.value })}>
          <option value="">All kinds</option>
          {EVENT_KINDS.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
          <option value="monitor">would reject (monitor)</option>
        </select>
        <Checkbox label="Rejections only" checked={f.rejectionsOnly} onChange={(v) => liveUi.setFilter({ rejectionsOnly: v })} />
        {!isEmptyFilter(f) && (
          <Button small variant="link" onClick={() => liveUi.clearFilter()}>
            Clear filters
          </Button>
        )}
        <label className="field-inline trust-expiry" title="How long “Trust this IP” trusts an address">
          <span className="muted">Trust lasts</span>
          <TrustExpirySelect label="How long Trust this IP lasts" value={expiry} onChange={(v) => liveUi.setTrustExpiry(v)} />
        </label>
        <Button onClick={() => liveUi.togglePause()} variant={ui.paused ? 'primary' : 'default'} aria-pressed={ui.paused} title="Space or Ctrl+P" data-action="pause">
          {ui.paused ? 'Resume' : 'Pause'}
        </Button>
        {frozen && (
          <span className="hold-state" data-testid="hold-state">
            {ui.paused ? 'Paused' : 'Held while you point at the rows'}
          </span>
        )}
        {frozen && newWhileHeld > 0 && (
          <button type="button" className="new-pill" onClick={() => liveUi.setPaused(false)} data-testid="new-count">
            {fmtCount(newWhileHeld)} new
          </button>
        )}
        {!frozen && scrolledAway > 0 && (
          <button type="button" className="new-pill" onClick={toTop}>
            ↑ {fmtCount(scrolledAway)} newer
          </button>
        )}
        <span className="live-counts" data-testid="live-counts">
          {fmtCount(rows.length)} shown · {fmtCount(store.size)} held (max {fmtCount(store.cap)}) · {fmtCount(rate)}/s
          {store.droppedByRelay > 0 && (
            <span title="The relay dropped events for this console because it could not keep up" style={{ color: 'var(--warn)' }}>
              {' '}
              · {fmtCount(store.droppedByRelay)} dropped
            </span>
          )}
          {store.lastCatchUp && (
            <span title="Events the relay logged while the console was disconnected, replayed from its history when the console came back" data-testid="live-caught-up">
              {' '}
              · {fmtCount(store.lastCatchUp.events)} caught up after the reconnect at {fmtTime(store.lastCatchUp.at)}
            </span>
          )}
        </span>
      </div>
      {gaps.length > 0 && (
        <div className="live-gaps" data-testid="live-gaps">
          {gaps.map((g) => {
            const n = gapNotice(g, retention);
            return (
              <p key={`${g.afterId}-${g.beforeId}`} className={`notice ${n.whileAway ? 'notice-warn' : 'notice-info'}`} role="status" title={n.detail} data-testid="live-gap">
                <span>
                  <strong>{n.text}</strong> {n.where}
                </span>
              </p>
            );
          })}
        </div>
      )}
      {store.breaks.length > 0 && (
        <div className="live-gaps" data-testid="live-breaks">
          {store.breaks.map((b) => (
            <p key={b.from} className={`notice ${b.restartedAt === null ? 'notice-info' : 'notice-warn'}`} role="status" data-testid="live-break">
              <span>{breakNotice(b)}</span>
            </p>
          ))}
        </div>
      )}
      <div className="live-main">
        <div className="live-table" role="table" aria-label="Live events" aria-rowcount={rows.length}>
          <div className="live-head" role="row">
            <span role="columnheader">Time</span>
            <span role="columnheader">Kind</span>
            <span role="columnheader">IP</span>
            <span role="columnheader">Summary</span>
          </div>
          <div
            className="live-scroll"
            ref={scrollRef}
            onScroll={onScroll}
            onPointerMove={onPointerMove}
            onPointerLeave={onPointerLeave}
            onKeyDown={onKeyDown}
            tabIndex={0}
            aria-label="Live events: arrows move the selection, Escape closes the detail"
            data-testid="live-scroll"
          >
            {rows.length === 0 ? (
              <div className="live-empty">
                {!connected && store.size === 0 ? (
                  <EmptyState title="No live traffic">{conn?.message ?? 'Not connected.'}</EmptyState>
                ) : store.size === 0 ? (
                  'Waiting for traffic… Events appear here as soon as the relay sees them.'
                ) : (
                  'No event matches the filters.'
                )}
              </div>
            ) : (
              <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }} role="rowgroup">
                {items.map((vi) => {
                  const e = rows.get(vi.index);
                  if (!e) return null;
                  const t = e.kind === 'rejected' ? trustedOf(e.ip) : null;
                  return (
                    <Row
                      key={vi.key}
                      e={e}
                      top={vi.start}
                      selected={selected?.id === e.id}
                      onSelect={onSelect}
                      onTrust={onTrust}
                      onOnlyIp={onOnlyIp}
                      trustDisabled={trustDisabled}
                      trustPending={pending !== null && pending === e.ip}
                      trustTitle={e.ip ? rowTrustTitle(e.ip, e) : ''}
                      trustedAs={t ? `${e.ip} is trusted now: in "${t.group}"${t.entry.expiresAt ? ` until ${fmtDateTime(t.entry.expiresAt)}` : ', no expiry'}` : null}
                    />
                  );
                })}
              </div>
            )}
          </div>
        </div>
        {selected && (
          <SessionPanel
            event={selected}
            onClose={() => setSelected(null)}
            onTrust={onTrust}
            onOnlyIp={onOnlyIp}
            trustDisabled={trustDisabled}
            trustPending={pending !== null && pending === selected.ip}
            expiry={expiry}
            setExpiry={liveUi.setTrustExpiry}
            effects={effects}
            trusted={trustedOf(selected.ip)}
          />
        )}
      </div>
      {confirming && confirming.event.ip && (
        <ConfirmDialog
          open
          title={effects?.relays === false ? `Trust ${confirming.event.ip}? It still may not relay` : `Let ${confirming.event.ip} relay mail to any domain?`}
          confirmLabel={effects?.relays === false ? 'Trust anyway' : 'Trust and allow relaying'}
          danger={effects?.relays !== false}
          busy={pending === confirming.event.ip}
          onCancel={() => setConfirming(null)}
          onConfirm={() => {
            const { event: e, expiry: x } = confirming;
            setConfirming(null);
            void trust(e.ip!, x, e.kind === 'rejected' ? e.rule : undefined, effects);
          }}
        >
          <div data-testid="relay-trust-confirm">
            <p>
              The relay refused {confirming.event.kind === 'rejected' && confirming.event.to ? <span className="mono">{confirming.event.to}</span> : 'a recipient'} because{' '}
              {confirming.event.ip} may not relay: the domain is not one of this relay's, and the client neither logged in nor is in an allowed group.
            </p>
            {effects === null ? (
              <p>The configuration is not read yet, so what trusting grants cannot be said here; check Trusted IP groups and Security options.</p>
            ) : effects.relays ? (
              <p>
                <strong>
                  Trusting adds it to "{effects.group}", which may relay (relay.allowGroups): {confirming.event.ip} will be able to send mail through this relay to any
                  domain
                </strong>
                {effects.dnsChecks.length > 0 ? `, without the ${effects.dnsChecks.join(' and ')} check${effects.dnsChecks.length === 1 ? '' : 's'}` : ''}, and it skips the per-IP
                limits. If the address is shared, compromised or an open proxy, spam will go out under this relay's name. For a person or an application, an SMTP login
                (AUTH) is the safer way to allow relaying.
              </p>
            ) : (
              <p>
                {trustWarning(confirming.event.ip, effects)} It does <strong>not</strong> let it relay: "{effects.group ?? '(none)'}" is not in relay.allowGroups. To allow
                relaying, add the address to an allowed group in Trusted IP groups, or have the client log in (SMTP AUTH).
              </p>
            )}
            <label className="field-inline">
              <span>Trust for</span>
              <TrustExpirySelect label="How long to trust this address" value={confirming.expiry} onChange={(v) => setConfirming({ ...confirming, expiry: v })} />
            </label>
          </div>
        </ConfirmDialog>
      )}
      {frozen && ui.paused && (
        <p className="faint" style={{ margin: '6px 0 0', fontSize: 12 }}>
          Paused at {fmtTime(frozen.at)}: still receiving; Resume (Space) shows the new events.
        </p>
      )}
    </div>
  );
}

/** The choice of how long a trust lasts (the toolbar's default, and the confirmation's own). */
function TrustExpirySelect({ label, value, onChange, disabled }: { label: string; value: TrustExpiry; onChange: (v: TrustExpiry) => void; disabled?: boolean }) {
  return (
    <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value as TrustExpiry)} disabled={disabled}>
      {TRUST_EXPIRIES.map((x) => (
        <option key={x.value} value={x.value}>
          {x.label}
        </option>
      ))}
    </select>
  );
}
