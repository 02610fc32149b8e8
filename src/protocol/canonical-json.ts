/**
 * JSON Canonicalization Scheme, RFC 8785.
 *
 * - Objects: members sorted by the UTF-16 code units of their names (RFC 8785 3.2.3),
 *   which is what Array.prototype.sort does on strings by default.
 * - Numbers: ECMAScript's Number-to-String (RFC 8785 3.2.2.3), which JSON.stringify uses.
 * - Strings: JSON.stringify's escaping matches RFC 8785 3.2.2.2 for well-formed strings;
 *   lone surrogates are refused because RFC 8785 requires valid Unicode.
 *
 * @throws TypeError for values JSON cannot carry exactly: non-finite numbers, lone
 *   surrogates, undefined, functions, bigint, symbols.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot encode ${value}`);
      return JSON.stringify(value);
    case 'string':
      if (!isWellFormed(value)) throw new TypeError('canonical JSON cannot encode a lone surrogate');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const record = value as Record<string, unknown>;
      const members: string[] = [];
      for (const key of Object.keys(record).sort()) {
        const member = record[key];
        if (member === undefined) continue; // as JSON.stringify: an undefined member is absent
        members.push(`${canonicalJson(key)}:${canonicalJson(member)}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

/** Whether `text` is well-formed UTF-16: no lone surrogate (String.prototype.isWellFormed, which not every engine we run on has). */
export function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return false;
    }
  }
  return true;
}
