/**
 * Test helpers: a small master history as binlog files (fixtureHistory) and that history archived
 * into a repository as segments (archiveHistory), for the archive's tests and its users'.
 */
import { readBinlog } from '../binlog/reader.js';
import type { Repository } from '../repository.js';
import type { ArchiveLink, SegmentLink } from '../archive/format.js';
import { putSegment } from '../archive/io.js';
import { binlogFile, fixtureEvents, fixtureFileStart, fixtureTransaction } from './binlog.js';

/** The first history's clock: 0-1-n was logged at HISTORY_T0 + 10 n (UTC seconds). */
export const HISTORY_T0 = 1_780_000_000; // 2026-05-28T20:26:40Z
export const HISTORY_SERVER = { serverId: 1, serverUuid: null };

/** A master's history: three files, transactions 0-1-1 .. 0-1-10, ten seconds apart (0-1-n at T0 + 10n). */
export function fixtureHistory(): Array<{ name: string; bytes: Buffer; cuts: number[] }> {
  const tx = (n: number) => fixtureTransaction({ domain: 0, serverId: 1, seq: n }, HISTORY_T0 + 10 * n, 50 + n);
  const files = [
    { name: 'mysql-bin.000001', state: [], txs: [1, 2, 3, 4], rotate: 'mysql-bin.000002' },
    { name: 'mysql-bin.000002', state: [{ domain: 0, serverId: 1, seq: 4 }], txs: [5, 6, 7, 8], rotate: 'mysql-bin.000003' },
    { name: 'mysql-bin.000003', state: [{ domain: 0, serverId: 1, seq: 8 }], txs: [9, 10], rotate: undefined },
  ];
  return files.map((f) => {
    const { bytes } = binlogFile([...fixtureFileStart(f.state, f.name), ...f.txs.flatMap(tx), ...(f.rotate ? [fixtureEvents.rotate(f.rotate)] : [])]);
    const cuts = readBinlog(bytes).events.filter((e) => e.commit).map((e) => e.end);
    return { name: f.name, bytes, cuts };
  });
}

/** Archives `files`, each cut after its transactions number `cutAfter` (1-based, within the file) and at its end. */
export async function archiveHistory(repo: Repository, files: ReturnType<typeof fixtureHistory>, cutAfter: number[] = [2], prev: ArchiveLink | null = null): Promise<SegmentLink[]> {
  const links: SegmentLink[] = [];
  for (const f of files) {
    const points = [0, ...cutAfter.map((n) => f.cuts[n - 1]!).filter((c) => c !== undefined && c < f.bytes.length), f.bytes.length];
    const fde = readBinlog(f.bytes).events[0]!.bytes;
    for (let i = 0; i + 1 < points.length; i++) {
      const start = points[i]!;
      const link = await putSegment(repo, { prev, server: HISTORY_SERVER, file: f.name, start, bytes: f.bytes.subarray(start, points[i + 1]), formatDescription: fde });
      links.push(link);
      prev = link;
    }
  }
  return links;
}


/**
 * One binlog file of transactions 0-1-1, 0-1-2, ... logged at `times` (UTC seconds, one each, with
 * `rowBytes` of row data), archived after `prev` in segments of `per` transactions (the last one
 * with `observedThrough` when given).
 */
export async function archiveTimeline(
  repo: Repository,
  times: readonly number[],
  options: { per?: number; rowBytes?: number; prev?: ArchiveLink | null; observedThrough?: number; file?: string } = {},
): Promise<{ links: SegmentLink[]; bytes: Buffer }> {
  const name = options.file ?? 'mysql-bin.000001';
  const { bytes } = binlogFile([...fixtureFileStart([], name), ...times.flatMap((t, i) => fixtureTransaction({ domain: 0, serverId: 1, seq: i + 1 }, t, options.rowBytes ?? 40))]);
  const ends = readBinlog(bytes).events.filter((e) => e.commit).map((e) => e.end);
  const per = options.per ?? 1;
  const cuts = [0, ...ends.filter((_, i) => (i + 1) % per === 0 && i + 1 < ends.length), bytes.length];
  const fde = readBinlog(bytes).events[0]!.bytes;
  const links: SegmentLink[] = [];
  let prev = options.prev ?? null;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const last = i + 2 === cuts.length;
    const link = await putSegment(repo, {
      prev,
      server: HISTORY_SERVER,
      file: name,
      start: cuts[i]!,
      bytes: bytes.subarray(cuts[i]!, cuts[i + 1]!),
      formatDescription: fde,
      ...(last && options.observedThrough !== undefined ? { observedThrough: options.observedThrough } : {}),
    });
    links.push(link);
    prev = link;
  }
  return { links, bytes };
}
