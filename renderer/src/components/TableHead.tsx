/**
 * A table's header row, written as a list of columns instead of markup repeated in every view:
 *
 *   <TableHead columns={['IP', { label: 'Connections', num: true, title: 'open now' }, ACTIONS]} />
 *
 * Every header cell is `scope="col"`; `num` right-aligns a count; ACTIONS is the last column of row buttons, named
 * for screen readers only.
 */
export interface Column {
  label: string;
  /** a number column (right-aligned, as its cells) */
  num?: boolean;
  /** what the column counts, as a tooltip */
  title?: string;
  /** named for screen readers only (the column of row buttons) */
  srOnly?: boolean;
  className?: string;
}

/** The column of row buttons (right-aligned like the numbers beside it). */
export const ACTIONS: Column = { label: 'Actions', srOnly: true, num: true, className: 'actions' };

export function TableHead({ columns }: { columns: (string | Column)[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => {
          const col = typeof c === 'string' ? { label: c } : c;
          const className = [col.num ? 'num' : null, col.className ?? null].filter(Boolean).join(' ') || undefined;
          return (
            <th key={col.label} scope="col" className={className} title={col.title}>
              {col.srOnly ? <span className="sr-only">{col.label}</span> : col.label}
            </th>
          );
        })}
      </tr>
    </thead>
  );
}
