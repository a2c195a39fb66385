#!/usr/bin/env node
// Animated inputs for scripts/bench (BENCH_ANIMATED=1): from each photo, an animated GIF that
// pans across it, as screen recordings and reaction GIFs do, made with sharp.
//
//   node bench/make-animation.mjs --out DIR [--frames N] [--size WxH] [--delay MS] PHOTO...
//
// Writes DIR/<stem>-animated.gif: N frames (default 30) of W x H (default 640x480), each shown
// for MS milliseconds (default 80), looping for ever. Frame i is the part of the photo (turned
// upright and scaled to twice W across) that starts i/N of the way from its left edge.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

function usage(message) {
  if (message) console.error(`make-animation: ${message}`);
  console.error('usage: node bench/make-animation.mjs --out DIR [--frames N] [--size WxH] [--delay MS] PHOTO...');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { frames: 30, width: 640, height: 480, delay: 80, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${arg} needs a value`));
    if (arg === '--out') opts.out = value();
    else if (arg === '--frames') opts.frames = Number(value());
    else if (arg === '--delay') opts.delay = Number(value());
    else if (arg === '--size') [opts.width, opts.height] = value().split('x').map(Number);
    else if (arg.startsWith('-')) usage(`unknown option ${arg}`);
    else opts.files.push(arg);
  }
  if (!opts.out) usage('--out DIR is required');
  if (!opts.files.length) usage('no input photos');
  for (const k of ['frames', 'width', 'height', 'delay'])
    if (!(Number.isInteger(opts[k]) && opts[k] > 0)) usage(`--${k} must be a positive integer`);
  return opts;
}

async function main() {
  const { out, frames, width, height, delay, files } = parseArgs(process.argv.slice(2));
  await mkdir(out, { recursive: true });
  for (const file of files) {
    const stem = path.basename(file, path.extname(file));
    const { data, info } = await sharp(file)
      .rotate()
      .resize({ width: 2 * width, height, fit: 'outside' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const pictures = [];
    for (let i = 0; i < frames; i++) {
      const left = Math.floor(((info.width - width) * i) / frames);
      const top = Math.floor((info.height - height) / 2);
      pictures.push(
        await sharp(data, { raw: info }).extract({ left, top, width, height }).png().toBuffer(),
      );
    }
    const dest = path.join(out, `${stem}-animated.gif`);
    await sharp(pictures, { join: { animated: true } })
      .gif({ delay: Array(frames).fill(delay), loop: 0 })
      .toFile(dest);
  }
}

main().catch((err) => {
  console.error(`make-animation: ${err.message}`);
  process.exit(1);
});
