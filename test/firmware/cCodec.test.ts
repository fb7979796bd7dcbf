/**
 * Compiles the C99 reference codec (firmware-protocol/c) with gcc into a temp
 * dir and runs it against the same golden vectors as the TS codec, both ways.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_FAMILIES, loadFramingVectors, loadHeadVectors, loadMessageVectors } from './vectorFiles.js';

const C_DIR = fileURLToPath(new URL('../../firmware-protocol/c/', import.meta.url));
const orDash = (hex: string): string => (hex === '' ? '-' : hex);

function vectorLines(): string[] {
  const lines: string[] = [];
  for (const family of MESSAGE_FAMILIES) {
    for (const v of loadMessageVectors(family)) lines.push(`E ${v.frame.seq} ${v.frame.command} ${orDash(v.frame.payload)} ${v.hex}`);
  }
  const framing = loadFramingVectors();
  for (const v of framing.crc) lines.push(`C ${orDash(v.hex)} ${v.crc}`);
  for (const v of framing.frames) lines.push(`E ${v.frame.seq} ${v.frame.command} ${orDash(v.frame.payload)} ${v.hex}`);
  for (const v of framing.invalid) lines.push(`I ${v.hex}`);
  for (const v of framing.streams) lines.push(`S ${v.chunks.join(',')} ${v.frames.length ? v.frames.join(',') : '-'} ${v.discardedBytes}`);
  // the chain-head witness and the session report (protocol 2): their payloads from relay.json, the head's rule and NVM from head.json
  type HeadJson = { seq: number; hash: string };
  for (const v of loadMessageVectors('relay')) {
    const body = v.message.body as { useSeq?: number; maxMs?: number; head?: HeadJson; held?: HeadJson; status?: number; seq?: number; hash?: string };
    if (v.message.name === 'get-head' && v.message.kind === 'response') lines.push(`G ${body.seq} ${body.hash} ${v.frame.payload}`);
    if (v.message.name === 'relay-enable-head' && v.message.kind === 'request') lines.push(`P ${v.frame.payload} ${body.useSeq} ${body.maxMs} ${body.head!.seq} ${body.head!.hash}`);
    if (v.message.name === 'relay-enable-head' && v.message.kind === 'response') lines.push(`Q ${body.status} ${body.held!.seq} ${body.held!.hash} ${v.frame.payload}`);
    if (v.message.name === 'get-session' && v.message.kind === 'response') {
      const session = v.message.body as { state: number; useSeq: number; elapsedMs: number };
      lines.push(`X ${session.state} ${session.useSeq} ${session.elapsedMs} ${v.frame.payload}`);
    }
  }
  const head = loadHeadVectors();
  for (const v of head.accept) lines.push(`A ${v.held.seq} ${v.proposed.seq} ${v.accepted ? 1 : 0}`);
  for (const v of head.records) lines.push(`R ${v.generation} ${v.head.seq} ${v.head.hash} ${v.hex}`);
  for (const v of head.images) lines.push(`M ${v.hex} ${v.generation} ${v.head.seq} ${v.head.hash}`);
  for (const v of head.writes) lines.push(`W ${v.before} ${v.head.seq} ${v.head.hash} ${v.after} ${v.slot}`);
  return lines;
}

/** The same lines, committed for the firmware team's `make check` without Node */
const LINES_FILE = join(C_DIR, 'vectors.txt');

describe('C99 reference codec against the golden vectors', () => {
  let dir: string;
  let driver: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tally-ccodec-'));
    driver = join(dir, 'test_vectors');
    execFileSync('gcc', ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-O2', '-o', driver, join(C_DIR, 'test_vectors.c'), join(C_DIR, 'tally_frame.c'), join(C_DIR, 'tally_head.c')], {
      stdio: 'pipe',
    });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes every vector line', () => {
    const lines = vectorLines();
    expect(lines.length).toBeGreaterThan(50);
    const output = execFileSync(driver, [], { input: lines.join('\n') + '\n', encoding: 'utf8' });
    // E lines make 3 checks, S lines 3 + one per frame, C and I lines 1
    expect(output.trim().split('\n').at(-1)).toMatch(/^ok \d+ checks, 0 failures$/);
    const checks = Number(/ok (\d+) checks/.exec(output)?.[1]);
    expect(checks).toBeGreaterThanOrEqual(lines.length);
  });

  it('c/vectors.txt is in step with the JSON vectors (UPDATE_VECTORS=1 rewrites it)', () => {
    const expected = vectorLines().join('\n') + '\n';
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(LINES_FILE, expected);
    expect(readFileSync(LINES_FILE, 'utf8')).toBe(expected);
  });

  it('fails on a wrong vector (the driver can fail)', () => {
    const first = loadMessageVectors('link')[0]!;
    const wrongHex = first.hex.slice(0, -1) + (first.hex.endsWith('0') ? '1' : '0');
    let status = 0;
    try {
      execFileSync(driver, [], { input: `E ${first.frame.seq} ${first.frame.command} ${first.frame.payload} ${wrongHex}\n`, encoding: 'utf8' });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).toBe(1);
  });
});
