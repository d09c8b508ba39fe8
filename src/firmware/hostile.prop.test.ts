/**
 * Hostile input to every firmware parser: mutated, truncated and re-checksummed tables, lengths beyond the
 * buffer or below a header, offsets pointing outside, zero-length nodes. Each parse returns or throws a
 * typed FirmwareError — never another exception, never a hang.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acpiSum } from './acpi.js';
import { buildDeviceTree, parseDtb, toDtb } from './devicetree.js';
import { buildDmar, parseDmar } from './dmar.js';
import { FirmwareError } from './errors.js';
import { buildIort, parseIort } from './iort.js';
import { fixtureMachine } from './testing.js';
import { buildViot, parseViot } from './viot.js';

const RUNS = Number(process.env['VIOMMU_FUZZ_RUNS'] ?? 100_000);

const seeds: { name: string; bytes: Uint8Array; parse: (b: Uint8Array) => unknown; acpi: boolean }[] = [
  { name: 'VIOT', bytes: buildViot(fixtureMachine('seed-004'))!, parse: parseViot, acpi: true },
  { name: 'DMAR', bytes: buildDmar(fixtureMachine('q35-vtd'))!, parse: parseDmar, acpi: true },
  { name: 'IORT', bytes: buildIort(fixtureMachine('arm-smmuv3'))!, parse: parseIort, acpi: true },
  { name: 'DTB', bytes: toDtb(buildDeviceTree(fixtureMachine('seed-004'))), parse: parseDtb, acpi: false },
];

const mutation = fc.record({
  seed: fc.integer({ min: 0, max: seeds.length - 1 }),
  edits: fc.array(fc.tuple(fc.nat(), fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 0xff, 0x04, 0x10, 0x18))), { maxLength: 6 }),
  // Overwrite a 16- or 32-bit length/offset/count field somewhere with an extreme value.
  field: fc.option(fc.tuple(fc.nat(), fc.constantFrom(0, 1, 3, 4, 0x10, 0xffff, 0xffffffff))),
  truncate: fc.option(fc.nat()),
  fixChecksum: fc.boolean(),
});

describe('firmware parsers under hostile input', () => {
  it(`${RUNS} mutated tables: typed errors only, never a hang`, () => {
    fc.assert(
      fc.property(mutation, (mu) => {
        const s = seeds[mu.seed]!;
        let b = s.bytes.slice();
        for (const [at, v] of mu.edits) b[at % b.length] = v;
        if (mu.field) {
          const at = mu.field[0] % (b.length - 4);
          new DataView(b.buffer).setUint32(at, mu.field[1] >>> 0, !s.acpi ? false : true);
        }
        if (mu.truncate !== null) b = b.subarray(0, mu.truncate % (b.length + 1));
        if (s.acpi && mu.fixChecksum && b.length >= 36) {
          // Make the header consistent so the parser gets past it and meets the damage inside.
          new DataView(b.buffer, b.byteOffset).setUint32(4, b.length, true);
          b[9] = 0;
          b[9] = (256 - acpiSum(b)) & 0xff;
        }
        const t0 = performance.now();
        try {
          s.parse(b);
        } catch (e) {
          if (!(e instanceof FirmwareError)) throw e;
        }
        assert.ok(performance.now() - t0 < 250, `${s.name} parse took too long`);
      }),
      { numRuns: RUNS },
    );
  });

  it('random bytes with a valid header shape', () => {
    fc.assert(
      fc.property(fc.constantFrom('VIOT', 'DMAR', 'IORT'), fc.uint8Array({ minLength: 0, maxLength: 400 }), (sig, body) => {
        const b = new Uint8Array(36 + body.length);
        b.set(new TextEncoder().encode(sig));
        new DataView(b.buffer).setUint32(4, b.length, true);
        b.set(body, 36);
        b[9] = (256 - acpiSum(b)) & 0xff;
        const parse = sig === 'VIOT' ? parseViot : sig === 'DMAR' ? parseDmar : parseIort;
        try {
          parse(b);
        } catch (e) {
          if (!(e instanceof FirmwareError)) throw e;
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('rejects specific malformations with their own codes', () => {
    const viot = buildViot(fixtureMachine('seed-004'))!.slice();
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        if (e instanceof FirmwareError) return e.code;
        throw e;
      }
      return 'none';
    };
    assert.equal(code(() => parseViot(viot.subarray(0, 20))), 'ACPI_TRUNCATED');
    const badSum = viot.slice();
    badSum[9] = badSum[9]! ^ 1;
    assert.equal(code(() => parseViot(badSum)), 'ACPI_CHECKSUM');
    const zeroNode = viot.slice();
    new DataView(zeroNode.buffer).setUint16(48 + 2, 0, true);
    zeroNode[9] = 0;
    zeroNode[9] = (256 - acpiSum(zeroNode)) & 0xff;
    assert.equal(code(() => parseViot(zeroNode)), 'VIOT_NODE_LENGTH');
    const longer = viot.slice();
    new DataView(longer.buffer).setUint32(4, viot.length + 100, true);
    assert.equal(code(() => parseViot(longer)), 'ACPI_LENGTH');
    const dtb = toDtb(buildDeviceTree(fixtureMachine('seed-004')));
    assert.equal(code(() => parseDtb(dtb.subarray(0, dtb.length - 8))), 'DT_LENGTH');
    assert.equal(code(() => parseDtb(new Uint8Array(64))), 'DT_MAGIC');
  });
});
