#!/usr/bin/env node
// Reference for scripts/bench: the work `imghost resize FILE... --out DIR` does, done with sharp.
//
//   node bench/sharp-resize.mjs --out DIR [--format jpeg|webp|avif|gif] [--animated]
//                               [--quality Q | --qualities S,M,L] FILE...
//
// For each input, sequentially: three variants, small/medium/large = 320/1024/2048 px on the
// long edge, never upscaled, EXIF orientation applied, as JPEG (4:2:0, the default), WebP
// (effort 4, libwebp's default and imghost's), AVIF (libaom through libheif, effort 4, sharp's
// default, 8 bits) or GIF (sharp's defaults) at quality Q (default
// 82), or S, M and L for the small, medium and large variants, written as
// DIR/<stem>-small.<ext>, -medium and -large (the names imghost uses). With --animated every
// frame is read and resized (`sharp(input, { animated: true })`); animations carry no EXIF
// orientation, and sharp does not turn multi-frame images.
// One libvips thread, no libvips operation cache. Prints nothing but errors: timing is done from
// outside, the same way for both tools.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

const VARIANTS = [
  ['small', 320],
  ['medium', 1024],
  ['large', 2048],
];
const FORMATS = { jpeg: 'jpg', webp: 'webp', avif: 'avif', gif: 'gif' };

function usage(message) {
  if (message) console.error(`sharp-resize: ${message}`);
  console.error('usage: node bench/sharp-resize.mjs --out DIR [--format jpeg|webp] [--quality Q] FILE...');
  process.exit(2);
}

function parseArgs(argv) {
  let out;
  let format = 'jpeg';
  let animated = false;
  let qualities = [82, 82, 82];
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--out') {
      if (i + 1 >= argv.length) usage('--out needs a directory');
      out = argv[++i];
    } else if (arg === '--format') {
      format = argv[++i];
      if (!(format in FORMATS)) usage('--format is jpeg, webp, avif or gif');
    } else if (arg === '--animated') {
      animated = true;
    } else if (arg === '--quality' || arg === '--qualities') {
      const values = argv[++i].split(',').map(Number);
      qualities = values.length === 1 ? [values[0], values[0], values[0]] : values;
      if (qualities.length !== 3 || !qualities.every((q) => q >= 1 && q <= 100)) usage(`${arg}: 1 to 100, one or three`);
    } else if (arg.startsWith('--out=')) {
      out = arg.slice('--out='.length);
    } else if (arg === '--') {
      files.push(...argv.slice(i + 1));
      break;
    } else if (arg === '-h' || arg === '--help') {
      usage();
    } else if (arg.startsWith('-')) {
      usage(`unknown option ${arg}`);
    } else {
      files.push(arg);
    }
  }
  if (!out) usage('--out DIR is required');
  if (files.length === 0) usage('no input files');
  return { out, files, format, qualities, animated };
}

async function main() {
  const { out, files, format, qualities, animated } = parseArgs(process.argv.slice(2));
  sharp.concurrency(1);
  sharp.cache(false);
  await mkdir(out, { recursive: true });

  for (const file of files) {
    const stem = path.basename(file, path.extname(file));
    for (const [index, [name, size]] of VARIANTS.entries()) {
      const quality = qualities[index];
      const dest = path.join(out, `${stem}-${name}.${FORMATS[format]}`);
      try {
        const input = animated ? sharp(file, { animated: true }) : sharp(file).rotate();
        const resized = input.resize(size, size, { fit: 'inside', withoutEnlargement: true });
        const encoders = {
          jpeg: () => resized.jpeg({ quality }),
          webp: () => resized.webp({ quality, effort: 4 }),
          avif: () => resized.avif({ quality, effort: 4, bitdepth: 8 }),
          gif: () => resized.gif(),
        };
        const encoded = encoders[format]();
        await encoded.toFile(dest);
      } catch (err) {
        throw new Error(`${file} -> ${dest}: ${err.message}`);
      }
    }
  }
}

main().catch((err) => {
  console.error(`sharp-resize: ${err.message}`);
  process.exit(1);
});
