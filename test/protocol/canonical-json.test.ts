// RFC 8785 (JCS) examples, compared as exact UTF-8 bytes; a failure names the example.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { canonicalJson, toHex, utf8 } from '../../src/protocol/index.ts';

const vectors = JSON.parse(readFileSync(new URL('../vectors/rfc8785-jcs.json', import.meta.url), 'utf8')) as {
  objects: { name: string; input: string; expected: string }[];
  numbers: [string, string][];
  errors: [string, string][];
};

function doubleFromHex(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('canonical JSON (RFC 8785)', () => {
  vectors.objects.forEach((vector, index) => {
    it(`object ${index} (${vector.name}) matches byte for byte`, () => {
      const actual = utf8(canonicalJson(JSON.parse(vector.input)));
      expect(toHex(actual), `object ${index} (${vector.name})`).toBe(toHex(utf8(vector.expected)));
    });
  });

  it('serializes every Appendix B number exactly', () => {
    vectors.numbers.forEach(([hex, expected], index) => {
      expect(canonicalJson(doubleFromHex(hex)), `number ${index} (${hex})`).toBe(expected);
    });
  });

  it('refuses values JSON cannot carry', () => {
    vectors.errors.forEach(([hex, name], index) => {
      expect(() => canonicalJson(doubleFromHex(hex)), `error ${index} (${name})`).toThrow(TypeError);
    });
    expect(() => canonicalJson('\ud800')).toThrow(/lone surrogate/);
    expect(() => canonicalJson({ a: 1n })).toThrow(/bigint/);
  });

  it('drops undefined members as JSON.stringify does, and keeps array order', () => {
    expect(canonicalJson({ b: [3, 1, 2], a: undefined, c: { y: 1, x: 2 } })).toBe('{"b":[3,1,2],"c":{"x":2,"y":1}}');
  });
});
