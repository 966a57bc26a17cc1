/**
 * zod 4 probes whether it may compile parsers with `new Function`; under the renderer's CSP (script-src 'self', no
 * eval) the probe is refused and reported as a CSP violation, though zod then falls back. Told not to try. Imported
 * first by main.tsx, before any module parses (a module that parses at load would probe first).
 */
import { z } from 'zod';

z.config({ jitless: true });
