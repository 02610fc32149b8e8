// Signatures against RFC 8032 section 7.1, exact bytes; a failure names the vector.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ed, fromHex, toHex, verifyEd25519 } from '../../src/protocol/index.ts';

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

  // verifyEd25519 is what page and server use: WebCrypto's native Ed25519 where present, noble otherwise.
  vectors.forEach((vector, index) => {
    const label = `vector ${index} (${vector.name})`;
    it(`${label}: verifyEd25519 accepts it, and refuses it with any one bit flipped in signature, message or key`, async () => {
      const [signature, message, publicKey] = [fromHex(vector.signature), fromHex(vector.message), fromHex(vector.publicKey)];
      expect(await verifyEd25519(signature, message, publicKey), `${label}: verify`).toBe(true);
      for (const [part, bytes] of [['signature', signature], ['message', message], ['public key', publicKey]] as const) {
        if (bytes.length === 0) continue;
        const flipped = bytes.slice();
        flipped[flipped.length >> 1]! ^= 0x10;
        const args = { signature, message, publicKey, [part === 'public key' ? 'publicKey' : part]: flipped };
        expect(await verifyEd25519(args.signature, args.message, args.publicKey), `${label}: ${part} flipped must fail`).toBe(false);
      }
      expect(await verifyEd25519(signature.subarray(1), message, publicKey), `${label}: 63-byte signature`).toBe(false);
    });
  });
});
