// Draws the app icon (build/icon.png, 512x512) without any image tool: a shield over a relay arrow.
// Run: node build/make-icon.mjs. electron-builder derives the .ico/.icns from this PNG.
import fs from 'node:fs';
import zlib from 'node:zlib';

const N = 512;
const px = Buffer.alloc(N * N * 4);
const set = (x, y, [r, g, b, a]) => {
  const i = (y * N + x) * 4;
  const A = a / 255;
  px[i] = Math.round(px[i] * (1 - A) + r * A);
  px[i + 1] = Math.round(px[i + 1] * (1 - A) + g * A);
  px[i + 2] = Math.round(px[i + 2] * (1 - A) + b * A);
  px[i + 3] = Math.max(px[i + 3], a);
};
// 4x supersampled coverage of a shape given by inside(x, y)
const fill = (inside, color) => {
  for (let y = 0; y < N; y++)
    for (let x = 0; x < N; x++) {
      let c = 0;
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) if (inside(x + (sx + 0.5) / 4, y + (sy + 0.5) / 4)) c++;
      if (c) set(x, y, [color[0], color[1], color[2], Math.round((color[3] ?? 255) * (c / 16))]);
    }
};
const roundRect = (x0, y0, x1, y1, r) => (x, y) => {
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return x >= x0 && x <= x1 && y >= y0 && y <= y1 && (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
};
const shield = (x, y) => {
  const top = 110, mid = 300, bottom = 430, half = 150, cx = 256;
  if (y < top || y > bottom) return false;
  if (y <= mid) return Math.abs(x - cx) <= half - (y - top < 30 ? 0 : 0);
  const t = (y - mid) / (bottom - mid);
  return Math.abs(x - cx) <= half * Math.sqrt(1 - t * t);
};
const thickLine = (ax, ay, bx, by, w) => (x, y) => {
  const dx = bx - ax, dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
  return (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= (w / 2) ** 2;
};
fill(roundRect(16, 16, 496, 496, 96), [24, 52, 92]);
fill(shield, [240, 244, 250]);
fill(thickLine(180, 270, 235, 330, 34), [34, 139, 84]);
fill(thickLine(235, 330, 340, 205, 34), [34, 139, 84]);

const rows = Buffer.alloc(N * (N * 4 + 1));
for (let y = 0; y < N; y++) px.copy(rows, y * (N * 4 + 1) + 1, y * N * 4, (y + 1) * N * 4);
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const c = Buffer.alloc(4);
  c.writeUInt32BE(crc(td));
  return Buffer.concat([len, td, c]);
};
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(N, 0);
ihdr.writeUInt32BE(N, 4);
ihdr[8] = 8;
ihdr[9] = 6;
const png = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
fs.writeFileSync(new URL('./icon.png', import.meta.url), png);
console.log(`build/icon.png: ${png.length} bytes`);
