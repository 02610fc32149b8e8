// Signatures against RFC 8032 section 7.1, exact bytes; a failure names the vector.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ed, fromHex, toHex } from '../../src/protocol/index.ts';

const { vectors } = JSON.parse(readFileSync(new URL('../vectors/rfc8032-ed25519.json', import.meta.url), 'utf8')) as {
  vectors: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
};

describe('ed25519 (RFC 8032 7.1)', () => {
  vectors.forEach((vector, index) => {
    const label = `vector ${index} (${vector.name})`;
    it(`${label}: public key, signature and verification`, async () => {
      const secretKey = fromHex(vector.secretKey);
      const message = fromHex(vector.message);
      expect(toHex(await ed.getPublicKeyAsync(secretKey)), `${label}: public key`).toBe(vector.publicKey);
      expect(toHex(await ed.signAsync(message, secretKey)), `${label}: signature`).toBe(vector.signature);
      expect(await ed.verifyAsync(fromHex(vector.signature), message, fromHex(vector.publicKey)), `${label}: verify`).toBe(true);
      const flipped = fromHex(vector.signature);
      flipped[0]! ^= 1;
      expect(await ed.verifyAsync(flipped, message, fromHex(vector.publicKey)), `${label}: flipped signature must fail`).toBe(false);
    });
  });
});
