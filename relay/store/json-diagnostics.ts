/**
 * What is wrong with a JSON file edited by hand (config.json), in an admin's words: where JSON.parse stops, by line
 * and column with the line quoted and the column marked, the usual slip named (a missing or trailing comma, a
 * comment, single quotes, unquoted text, an invisible character); and keys written twice in one object, which
 * JSON.parse would drop without a word. Used by relay/store/config-store.ts.
 */

/** Where JSON.parse stops on `text`: its message, and the offset it names (or null when it names none). */
function jsonParseError(text: string): { message: string; pos: number | null } | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    const message = (err as Error).message;
    const m = / at position (\d+)/.exec(message);
    return { message, pos: m ? Number(m[1]) : null };
  }
}

/** true when `prefix` is valid JSON or fails only because it ends (what follows could still make it valid JSON) */
function endsEarly(prefix: string): boolean {
  const e = jsonParseError(prefix);
  return e === null || (/Unexpected end of JSON input/.test(e.message) || (e.pos !== null && e.pos >= prefix.length));
}

/**
 * JSON.parse's message made useful for a file edited by hand. V8 says "... in JSON at position 523", or, for some
 * errors (a trailing comma, an unknown word), "Unexpected token ']', "...": no position at all. An admin's editor
 * shows lines and columns. The answer names the line and column (1-based, as editors count them), quotes that line
 * and marks the column. Where V8 names no position, it is found as the shortest prefix of the text that cannot be
 * the start of valid JSON any more (JSON errors are decided by what comes before them), by bisection.
 */
export function jsonErrorText(text: string, message: string): string {
  if (text.trim() === '') return 'the file is empty';
  const stripped = (msg: string) => msg.replace(/( in JSON)? at position \d+/, '').replace(/, .*is not valid JSON$/s, '');
  let pos: number;
  let what = stripped(message);
  const given = / at position (\d+)/.exec(message);
  if (/Unexpected end of JSON input/.test(message)) {
    pos = text.trimEnd().length;
    what = 'the file ends before the JSON does (a missing } or ] ?)';
  } else if (given) {
    pos = Number(given[1]);
  } else {
    let lo = 0;
    let hi = text.length; // endsEarly(text.slice(0, lo)) holds (the empty prefix ends early); text itself fails
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (endsEarly(text.slice(0, mid))) lo = mid;
      else hi = mid;
    }
    // text.slice(0, hi) is the shortest prefix that fails by itself; its error names the place, or its last character is it
    const e = jsonParseError(text.slice(0, hi));
    pos = e?.pos ?? hi - 1;
  }
  if (pos >= text.trimEnd().length && !/^the file ends/.test(what)) what = `the file ends before the JSON does (${what}: a missing } or ] ?)`;
  what += jsonHint(text, pos);
  // a character the terminal would not show (a CR, a no-break space pasted from a web page, a zero-width space) is named
  const there = text.codePointAt(pos);
  what = what.replace(INVISIBLE_ALL, (c) => uPlus(c.codePointAt(0)!));
  if (there !== undefined && INVISIBLE.test(String.fromCodePoint(there)) && !what.includes(uPlus(there))) {
    what += ` (the character there is ${uPlus(there)}, which does not show)`;
  }
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = pos - lineStart + 1;
  let lineText = text.slice(lineStart).split('\n')[0]!.replace(/\r$/, '');
  let caretAt = column - 1;
  // a long line (a config written on one line): show the 80 characters around the column
  if (lineText.length > 80) {
    const from = Math.max(0, caretAt - 40);
    lineText = (from > 0 ? '...' : '') + lineText.slice(from, from + 80) + (from + 80 < lineText.length ? '...' : '');
    caretAt = caretAt - from + (from > 0 ? 3 : 0);
  }
  // the caret under the column: tabs kept as tabs (so it lines up however wide the terminal draws them), other
  // characters as spaces; invisible characters drawn as a middle dot, one for one
  const shownLine = lineText.replace(INVISIBLE_ALL, '\u00b7');
  const pad = shownLine.slice(0, Math.max(0, caretAt)).replace(/[^\t]/g, ' ');
  return `line ${line}, column ${column}: ${what}\n  ${shownLine}\n  ${pad}^`;
}

/** What the usual hand-editing slips look like where JSON.parse stops, in words: "" when none fits. */
function jsonHint(text: string, pos: number): string {
  const at = text[pos];
  const rest = text.slice(pos);
  // the last character before pos that is not white space, and its line
  let p = pos - 1;
  while (p >= 0 && /\s/.test(text[p]!)) p--;
  const before = p >= 0 ? text[p] : undefined;
  const lineOf = (i: number) => text.slice(0, i).split('\n').length;
  if (rest.startsWith('//') || rest.startsWith('/*')) return ': JSON has no comments; remove it (or keep a note in a "comment" of a trusted entry)';
  if (at === "'") return ': JSON takes double quotes ("...") around keys and text';
  if ((at === '}' || at === ']') && before === ',') return `: a comma before a closing ${at} is not allowed in JSON; remove the one at the end of line ${lineOf(p)}`;
  if (at === '"' && before !== undefined && /["}\]\d el]/.test(before) && lineOf(p) < lineOf(pos)) return `: a comma is missing at the end of line ${lineOf(p)}`;
  if (at !== undefined && /[A-Za-z]/.test(at) && !/^(true|false|null)\b/.test(rest)) return ': text in JSON is written in double quotes';
  return '';
}

/** control characters (a tab aside) and the invisible ones an editor or a web page slips in: one of them, and all */
const INVISIBLE_ALL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u00a0\u200b-\u200f\u2028\u2029\u2060\ufeff]/g;
const INVISIBLE = new RegExp(`^${INVISIBLE_ALL.source}$`);
const uPlus = (cp: number) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * Keys that appear twice in one object of a valid JSON text, with the lines of both. JSON.parse keeps the last one
 * and drops the first without a word: an admin who pastes `"domains": {...}` at the top of a config.json that has
 * `"domains": {}` further down would see the paste ignored.
 */
export function duplicateKeys(text: string): { key: string; lines: [number, number] }[] {
  type Frame = { object: boolean; keys: Map<string, number>; path: string; index: number; key: string | null };
  const out: { key: string; lines: [number, number] }[] = [];
  const stack: Frame[] = [];
  const join = (a: string, b: string) => (a === '' ? b : `${a}.${b}`);
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\n') line++;
    else if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const value = JSON.parse(text.slice(i, j + 1)) as string;
      i = j;
      let k = j + 1;
      while (k < text.length && (text[k] === ' ' || text[k] === '\t' || text[k] === '\r' || text[k] === '\n')) k++;
      const top = stack[stack.length - 1];
      if (top?.object && text[k] === ':') {
        const first = top.keys.get(value);
        if (first !== undefined) out.push({ key: join(top.path, value), lines: [first, line] });
        else top.keys.set(value, line);
        top.key = value;
      }
    } else if (ch === '{' || ch === '[') {
      const parent = stack[stack.length - 1];
      const path = !parent ? '' : join(parent.path, parent.object ? (parent.key ?? '') : String(parent.index));
      stack.push({ object: ch === '{', keys: new Map(), path, index: 0, key: null });
    } else if (ch === '}' || ch === ']') stack.pop();
    else if (ch === ',') {
      const top = stack[stack.length - 1];
      if (top && !top.object) top.index++;
    }
  }
  return out;
}
