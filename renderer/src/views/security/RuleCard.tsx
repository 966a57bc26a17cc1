/**
 * One row of SPEC section 1's table as a card: the rule's name and config key, what it does, its default and reply,
 * and its controls (mode, numbers, choices, groups). Edited fields are marked with the value they had.
 */
import { useId } from 'react';
import { Checkbox, Field } from '../../components/index.ts';
import { MODES } from '../../../../shared/config.ts';
import { MODE_LABELS, displayValue, getPath, type FieldDef, type FormValues, type RuleDef } from './model.ts';
import type { Config } from '../../../../shared/config.ts';

export interface RuleCardProps {
  rule: RuleDef;
  form: FormValues;
  base: Config;
  /**
   * the relay's config when it moved on past `base` while the form has edits (another admin applied a change): a
   * field it holds differently says so, so that "was 3" is not taken for what the relay does now
   */
  relayNow?: { revision: number; config: Config } | null;
  edited: ReadonlySet<string>;
  errors: Record<string, string>;
  /** the disabled reason for a viewer (or null) */
  why: string | null;
  /** group names defined in the config (for exempt groups) */
  groupNames: readonly string[];
  onChange: (id: string, value: string | string[]) => void;
}

export function RuleCard({ rule, form, base, relayNow = null, edited, errors, why, groupNames, onChange }: RuleCardProps) {
  const modeField = rule.fields.find((f) => f.kind === 'mode');
  const mode = modeField ? String(form[modeField.id] ?? '') : null;
  const ruleEdited = rule.fields.some((f) => edited.has(f.id));
  return (
    <section className={['rule-card', ruleEdited ? 'rule-edited' : '', mode === 'off' ? 'rule-off' : ''].filter(Boolean).join(' ')} data-rule={rule.key} aria-labelledby={`rule-${rule.key}`}>
      <div className="rule-head">
        <h3 id={`rule-${rule.key}`}>{rule.title}</h3>
        <code className="rule-key">{rule.key}</code>
        {rule.reply && (
          <span className="rule-reply" title="The SMTP reply a client gets">
            reply {rule.reply}
          </span>
        )}
      </div>
      <p className="rule-behaviour">
        {rule.behaviour} <span className="muted">Default: {rule.defaults}.</span>
      </p>
      <div className="rule-fields">
        {rule.fields.map((f) => (
          <FieldControl
            key={f.id}
            field={f}
            value={form[f.id]}
            was={edited.has(f.id) ? displayValue(f, getPath(base, f.path)) : null}
            relayNow={relayNowOf(f, base, relayNow)}
            error={errors[f.id] ?? null}
            why={why}
            groupNames={groupNames}
            dimmed={f.kind !== 'mode' && mode === 'off'}
            onChange={(v) => onChange(f.id, v)}
          />
        ))}
      </div>
    </section>
  );
}

interface FieldControlProps {
  field: FieldDef;
  value: string | string[] | undefined;
  /** the loaded value, when edited */
  was: string | null;
  /** the relay's value now, when another admin changed it since the form was loaded ("now 7 on the relay (revision 6)") */
  relayNow: string | null;
  error: string | null;
  why: string | null;
  groupNames: readonly string[];
  dimmed: boolean;
  onChange: (v: string | string[]) => void;
}

/** The relay's value of a field, when it differs from the one the form was loaded with. */
function relayNowOf(f: FieldDef, base: Config, relayNow: { revision: number; config: Config } | null): string | null {
  if (!relayNow) return null;
  const before = displayValue(f, getPath(base, f.path));
  const now = displayValue(f, getPath(relayNow.config, f.path));
  return now === before ? null : `now ${now} on the relay (revision ${relayNow.revision})`;
}

function Was({ was, relayNow }: { was: string | null; relayNow: string | null }) {
  return (
    <>
      {was !== null && <span className="field-was">was {was}</span>}
      {relayNow !== null && (
        <span className="field-was field-relay-now" title="Another administrator changed it after this form was loaded">
          {relayNow}
        </span>
      )}
    </>
  );
}

function FieldControl({ field: f, value, was, relayNow, error, why, groupNames, dimmed, onChange }: FieldControlProps) {
  const id = useId();
  if (f.kind === 'mode') {
    const v = String(value ?? '');
    return (
      <fieldset className={['mode-group', was !== null ? 'field-changed' : ''].filter(Boolean).join(' ')} data-field={f.id} title={why ?? undefined}>
        <legend>Mode</legend>
        <div className="segmented" role="radiogroup" aria-label="Mode">
          {MODES.map((m) => (
            <label key={m} className={['segment', v === m ? 'segment-on' : '', `segment-${m}`].filter(Boolean).join(' ')} title={why ?? MODE_LABELS[m]!.help}>
              <input
                type="radio"
                name={`${id}-mode`}
                value={m}
                checked={v === m}
                disabled={Boolean(why)}
                data-disabled-reason={why ?? undefined}
                onChange={() => onChange(m)}
              />
              <span>{MODE_LABELS[m]!.label}</span>
            </label>
          ))}
        </div>
        <Was was={was} relayNow={relayNow} />
      </fieldset>
    );
  }
  if (f.kind === 'choice') {
    const v = String(value ?? '');
    return (
      <fieldset className={['mode-group', was !== null ? 'field-changed' : ''].filter(Boolean).join(' ')} data-field={f.id} title={why ?? undefined}>
        <legend>{f.label}</legend>
        <div className="segmented" role="radiogroup" aria-label={f.label}>
          {f.choices!.map((c) => (
            <label key={c.value} className={['segment', v === c.value ? 'segment-on' : ''].filter(Boolean).join(' ')} title={why ?? undefined}>
              <input type="radio" name={`${id}-choice`} value={c.value} checked={v === c.value} disabled={Boolean(why)} data-disabled-reason={why ?? undefined} onChange={() => onChange(c.value)} />
              <span>{c.label}</span>
            </label>
          ))}
        </div>
        <Was was={was} relayNow={relayNow} />
      </fieldset>
    );
  }
  if (f.kind === 'groups') {
    const selected = Array.isArray(value) ? value : [];
    const all = [...groupNames, ...selected.filter((g) => !groupNames.includes(g))];
    return (
      <fieldset className={['groups-field', was !== null ? 'field-changed' : '', error ? 'field-invalid' : ''].filter(Boolean).join(' ')} data-field={f.id}>
        <legend>{f.label}</legend>
        {all.length === 0 && <p className="muted">No groups defined yet. Create one in Trusted IP groups.</p>}
        <div className="groups-choices">
          {all.map((g) => (
            <Checkbox
              key={g}
              label={groupNames.includes(g) ? g : `${g} (not defined)`}
              checked={selected.includes(g)}
              disabledReason={why}
              onChange={(on) => onChange(on ? [...selected, g] : selected.filter((x) => x !== g))}
            />
          ))}
        </div>
        {selected.length > 0 && <p className="field-hint">"Trust this IP" adds to: {selected[0]}</p>}
        {error && (
          <div className="field-error" role="alert">
            {error}
          </div>
        )}
        <Was was={was} relayNow={relayNow} />
      </fieldset>
    );
  }
  // int / mib
  return (
    <Field
      label={f.label}
      error={error}
      hint={f.help}
      className={['num-field', was !== null ? 'field-changed' : '', dimmed ? 'field-dimmed' : ''].filter(Boolean).join(' ')}
    >
      {({ id: inputId, describedBy, invalid }) => (
        <span className="num-input" data-field={f.id}>
          <input
            id={inputId}
            type="text"
            inputMode={f.kind === 'mib' ? 'decimal' : 'numeric'}
            className="num"
            value={typeof value === 'string' ? value : ''}
            onChange={(e) => onChange(e.target.value)}
            aria-invalid={invalid || undefined}
            aria-describedby={describedBy}
            disabled={Boolean(why)}
            title={why ?? (dimmed ? 'This rule is off; the number is kept for when you turn it on again.' : undefined)}
            data-disabled-reason={why ?? undefined}
            size={9}
          />
          {f.unit && <span className="unit">{f.unit}</span>}
          <Was was={was} relayNow={relayNow} />
        </span>
      )}
    </Field>
  );
}
