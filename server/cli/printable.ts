/**
 * Text a device supplied (refusal details, error messages, stdout, stderr, file paths), made safe
 * for the owner's terminal: a device must not be able to retitle it, clear it, move its cursor,
 * write its clipboard (OSC 52) or reorder what it shows (bidirectional overrides). Every control
 * character becomes a visible escape (`\x1b`, `\u{202e}`); newlines and tabs stay where the text
 * is meant to span lines. Output files written with `--out` are the exception: they are the
 * program's bytes, written as they are.
 */

/** C0 controls but tab and newline, DEL, C1 controls, and the Unicode controls that reorder or hide text. */
const UNSAFE_MULTILINE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/gu;
/** The same, and tab and newline too: for text that belongs on one line (a file path, an error message). */
const UNSAFE_LINE = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/gu;

function escape(c: string): string {
  const code = c.codePointAt(0)!;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** Text for one line of the terminal: every control character escaped, newlines and tabs included. */
export function printableLine(text: string): string {
  return text.replace(UNSAFE_LINE, escape);
}

/** Text that may span lines: control characters escaped, newlines and tabs kept. */
export function printableText(text: string): string {
  return text.replace(UNSAFE_MULTILINE, escape);
}

/**
 * JSON for the terminal: JSON.stringify escapes C0 controls already, but leaves DEL, C1 controls
 * (which some terminals obey: U+009B is CSI) and the Unicode controls as they are. They become
 * `\u` escapes, so the JSON means the same and shows safely.
 */
export function printableJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE_MULTILINE, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
