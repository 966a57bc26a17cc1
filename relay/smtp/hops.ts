/**
 * Mail loop detection (RFC 5321 6.3): the Received: fields of a message's header section, counted as its chunks go
 * by. Past HOP_LIMIT the relay refuses the message at the end of DATA with 554 5.4.6, as Postfix does past its
 * hopcount_limit (50): a deliverTo that points back at the relay, or two relays that send a domain to each other, would
 * otherwise pass one message round and round, a Received header longer each time (a tryout saw 100 laps in ten
 * seconds, stopped only by the per-IP hourly limit, and again each hour).
 *
 * Only the header section is read (it ends at the first empty line); a line is looked at by its first 9 octets, kept
 * across a chunk boundary when a chunk ends inside them.
 */
export const HOP_LIMIT = 50;

const RECEIVED = /^received:/i;

export class HopCounter {
  /** Received: fields seen so far in the header section */
  count = 0;
  private done = false;
  private lineStart = true;
  /** the start of a line a chunk ended in, before it could be told (fewer than 9 octets, no line end) */
  private prefix = '';

  push(chunk: Buffer): void {
    let pos = 0;
    while (!this.done && pos < chunk.length) {
      if (this.lineStart && this.prefix === '') {
        // (most lines start with neither "R", "r" nor a line end: told by their first octet, no string made)
        const first = chunk[pos]!;
        if (first !== 0x52 && first !== 0x72 && first !== 0x0d && first !== 0x0a) this.lineStart = false;
      }
      if (this.lineStart) {
        const head = this.prefix + chunk.toString('latin1', pos, Math.min(chunk.length, pos + 9 - this.prefix.length));
        // an empty line ends the header section
        if (head.startsWith('\n') || head.startsWith('\r\n')) {
          this.done = true;
          return;
        }
        if (head.length < 9 && !head.includes('\n') && pos + (head.length - this.prefix.length) >= chunk.length) {
          // the chunk ends before the line can be told: wait for the next one
          this.prefix = head;
          return;
        }
        if (RECEIVED.test(head)) this.count++;
        this.lineStart = false;
        // (a line end inside the prefix kept from the last chunk cannot be: a prefix holds none)
        pos += head.length - this.prefix.length;
        this.prefix = '';
        const inHead = head.indexOf('\n');
        if (inHead >= 0) {
          // a short line ended inside what was looked at: go on from the octet after its line end
          pos -= head.length - inHead - 1;
          this.lineStart = true;
          continue;
        }
      }
      const nl = chunk.indexOf(0x0a, pos);
      if (nl < 0) return;
      pos = nl + 1;
      this.lineStart = true;
    }
  }

  /** true once the header section holds HOP_LIMIT Received: fields or more */
  get tooMany(): boolean {
    return this.count >= HOP_LIMIT;
  }
}
