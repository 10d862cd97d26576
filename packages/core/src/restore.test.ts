import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alignedSharedBuffers, DIRECT_ALIGN } from './direct-io.js';
import { createMode, roomsFor } from './restore.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('roomsFor (a packed run cut into rooms of the chunk buffer)', () => {
  const whole = alignedSharedBuffers(1, 4 * MiB)![0]!;

  /** Member i goes into room i mod n: each room must hold its members padded to a block, inside `whole`, page-aligned and apart. */
  function check(rooms: Buffer | Buffer[], lens: readonly number[]): number {
    if (Buffer.isBuffer(rooms)) {
      assert.equal(rooms, whole);
      return 1;
    }
    let end = whole.byteOffset;
    rooms.forEach((room, r) => {
      assert.equal(room.buffer, whole.buffer);
      assert.equal(room.byteOffset % DIRECT_ALIGN, 0, `room ${r} is page-aligned`);
      assert.ok(room.byteOffset >= end, `room ${r} does not overlap the one before`);
      end = room.byteOffset + room.length;
    });
    assert.ok(end <= whole.byteOffset + whole.length, 'the rooms lie inside the buffer');
    lens.forEach((len, i) => assert.ok(rooms[i % rooms.length]!.length >= Math.ceil(len / DIRECT_ALIGN) * DIRECT_ALIGN, `member ${i} (${len} bytes) fits its room`));
    return rooms.length;
  }

  it('gives many small members up to 8 rooms', () => {
    const lens = Array.from({ length: 30 }, (_, i) => 10 * KiB + i * 1000);
    assert.equal(check(roomsFor(whole, lens), lens), 8);
  });

  it('sizes each room for the members that go into it, so one long member does not shrink the others', () => {
    // One member of 1.9 MiB: a uniform cut would give two rooms; sized per room, more fit.
    const lens = Array.from({ length: 16 }, (_, i) => (i === 3 ? 1900 * KiB : 100 * KiB));
    const n = check(roomsFor(whole, lens), lens);
    assert.ok(n > 2, `${n} rooms`);
  });

  it('gives no more rooms than members, and the whole buffer for one member or members too long to share it', () => {
    assert.equal(check(roomsFor(whole, [5000, 7000, 9000]), [5000, 7000, 9000]), 3);
    check(roomsFor(whole, [100 * KiB]), [100 * KiB]);
    assert.equal(roomsFor(whole, [100 * KiB]), whole);
    assert.equal(roomsFor(whole, [3 * MiB, 3 * MiB]), whole);
  });
});

describe('createMode (a restored file created with its mode, where no chmod is then needed)', () => {
  it('gives the permission bits when the umask leaves them all', () => {
    assert.equal(createMode(0o100644, 0o022), 0o644);
    assert.equal(createMode(0o100640, 0o022), 0o640);
    assert.equal(createMode(0o100000, 0o022), 0o000);
    assert.equal(createMode(0o100664, 0o002), 0o664);
  });
  it('gives nothing (chmod after the create) when the umask would take a bit, or for set-id and sticky bits', () => {
    assert.equal(createMode(0o100664, 0o022), undefined);
    assert.equal(createMode(0o100666, 0o022), undefined);
    assert.equal(createMode(0o104755, 0o022), undefined);
    assert.equal(createMode(0o102755, 0o000), undefined);
    assert.equal(createMode(0o101777, 0o000), undefined);
  });
});
