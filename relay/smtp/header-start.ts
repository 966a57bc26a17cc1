/**
 * Whether a message begins with a header section, told from its first octets as DATA chunks go by.
 *
 * The relay puts its Received: field in front of what the client sent. When that begins with a header field (RFC 5322
 * 2.2: a field name of printable US-ASCII but ':', then ':') or with the empty line of an empty header section, the
 * Received: field simply joins the header section. When it begins with anything else (a line of text, a folded line,
 * an mbox "From " line), the client sent no header section, and the prepended field would turn that first line into a
 * malformed header field (or fold it into the Received: field). The front then adds the empty line that ends the header
 * section after its Received: field, so the message is one header field and the client's text as its body, as a
 * reader of RFC 5322 expects. A field name may be followed by white space before its colon ("Subject : x", the
 * obsolete syntax RFC 5322 4.5.8 tells readers to accept, as Postfix does).
 */
/** a field name longer than a line may be (RFC 5322 2.1.1) is not taken for one */
const MAX_NAME = 998;

export type HeaderStartVerdict = 'header' | 'body';

export class HeaderStart {
  private seen = 0;
  /** white space after a field name: RFC 5322's obsolete syntax (4.5.8) allows it before the colon, "Subject : x" */
  private gap = false;

  /** the verdict once the chunk told it; null while every octet so far may still be a field name */
  push(chunk: Buffer): HeaderStartVerdict | null {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x3a) return this.seen > 0 ? 'header' : 'body';
      if (this.seen > 0 && (b === 0x20 || b === 0x09) && this.seen < MAX_NAME) {
        this.gap = true;
        this.seen++;
        continue;
      }
      if (!this.gap && b >= 0x21 && b <= 0x7e && this.seen < MAX_NAME) {
        this.seen++;
        continue;
      }
      // a line end before any octet: the empty line of an empty header section (already there)
      if ((b === 0x0d || b === 0x0a) && this.seen === 0) return 'header';
      return 'body';
    }
    return null;
  }

  /** the verdict at the end of DATA when no chunk told it: nothing at all is an empty message, some text is a body */
  end(): HeaderStartVerdict {
    return this.seen > 0 ? 'body' : 'header';
  }
}
