/**
 * Bare CR / bare LF in message data (SMTP smuggling defence, RFC 5321 2.3.8).
 * Streaming: a CR at the end of one chunk and an LF at the start of the next are one CRLF.
 * `normalize` rewrites every bare CR or LF to CRLF; the caller refuses the message instead when
 * smtp.bareLineEndings is "reject" (the `sawBare` flag says whether there was one).
 */
const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export class LineEndingFixer {
  sawBare = false;
  private pendingCR = false;

  /** Returns the chunk with line endings made CRLF (the same Buffer when nothing needed fixing). */
  push(chunk: Buffer): Buffer {
    // an empty chunk says nothing about a CR held from the previous one (it must not make it bare)
    if (chunk.length === 0) return chunk;
    let out: Buffer[] | null = null;
    let from = 0;
    let i = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk.length > 0 && chunk[0] === LF) {
        // the CR held from the previous chunk pairs with this LF: emit the CR, the LF goes out with the chunk
        out = [Buffer.from([CR])];
        i = 1;
      } else {
        this.sawBare = true;
        out = [CRLF];
      }
    }
    const n = chunk.length;
    for (; i < n; i++) {
      const b = chunk[i];
      if (b === CR) {
        if (i + 1 < n) {
          if (chunk[i + 1] === LF) {
            i++;
            continue;
          }
          // bare CR inside the chunk
          this.sawBare = true;
          (out ??= []).push(chunk.subarray(from, i), CRLF);
          from = i + 1;
        } else {
          // CR is the last byte: hold it until we see what follows
          (out ??= []).push(chunk.subarray(from, i));
          from = n;
          this.pendingCR = true;
        }
      } else if (b === LF) {
        // an LF not preceded by CR (a CRLF pair was skipped above)
        this.sawBare = true;
        (out ??= []).push(chunk.subarray(from, i), CRLF);
        from = i + 1;
      }
    }
    if (!out) return chunk;
    if (from < n) out.push(chunk.subarray(from));
    return Buffer.concat(out);
  }

  /** End of data: a CR still held is bare. */
  end(): Buffer {
    if (this.pendingCR) {
      this.pendingCR = false;
      this.sawBare = true;
      return CRLF;
    }
    return Buffer.alloc(0);
  }
}
