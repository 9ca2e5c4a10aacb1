// sharp peer for resize-bench: one long-running process over in-memory inputs.
// Usage: node sharp.js --width W --height H --format jpeg|webp|png|avif --quality Q [--crop centre|attention] --passes N [--out DIR] FILE...
// Prints `elapsed=<seconds> cpu=<seconds> count=<conversions>` for the timed passes
// (CPU time of the whole process, libvips' threads included).
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

function parse(argv) {
  const a = { files: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) a[argv[i].slice(2)] = argv[++i];
    else a.files.push(argv[i]);
  }
  return a;
}

async function convert(buf, a) {
  // Single-threaded like every tool in the comparison; the cache would turn repeated passes into lookups.
  const fit = a.crop ? { fit: 'cover', position: a.crop === 'attention' ? sharp.strategy.attention : 'centre' } : { fit: 'inside' };
  const img = sharp(buf, { failOn: 'none' }).resize(Number(a.width), Number(a.height), fit);
  const q = Number(a.quality);
  if (a.format === 'jpeg') return img.jpeg({ quality: q }).toBuffer();
  if (a.format === 'webp') return img.webp({ quality: q }).toBuffer();
  // libvips' own default effort (4), as vipsthumbnail uses it.
  if (a.format === 'avif') return img.avif({ quality: q }).toBuffer();
  return img.png().toBuffer();
}

async function main() {
  sharp.concurrency(1);
  sharp.cache(false);
  const a = parse(process.argv.slice(2));
  const inputs = a.files.map((f) => fs.readFileSync(f));
  const passes = Number(a.passes);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let count = 0;
  for (let p = 0; p < passes; p++) {
    for (let i = 0; i < inputs.length; i++) {
      const out = await convert(inputs[i], a);
      if (a.out && p === 0) {
        fs.writeFileSync(path.join(a.out, path.parse(a.files[i]).name + '.' + a.format), out);
      }
      count++;
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  console.log(`elapsed=${secs} cpu=${(cpu.user + cpu.system) / 1e6} count=${count}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
