/**
 * The CLI's command line, read without traps:
 * - a flag that takes a value takes the next word whatever it is (`--arg -s`), or `--flag=value`;
 * - `--` ends the flags: every word after it is an argument;
 * - an id that starts with `-` (`dewgrid status -Xq3...`) is an argument where the command takes
 *   ids, since no flag of ours is a single dash and more than one letter;
 * - an unknown flag says which one it may have meant ("did you mean --count?"), or which command
 *   has it.
 */

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** May be given more than once: the values are collected in order. */
  multiple?: boolean;
  /** A one-letter form (`-h`). */
  short?: string;
}

export type Flags = Record<string, FlagSpec>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A mistake on the command line: the CLI prints it on one line and exits 2. */
export class UsageError extends Error {}

export interface Parsed {
  values: Values;
  positionals: string[];
}

/**
 * @param flags the command's flags (with the global ones)
 * @param options.takesIds words that look like ids are arguments even when they start with `-`
 * @param options.otherFlags every command's flags by command, to say where an unknown flag belongs
 * @throws UsageError naming the word that is wrong
 */
export function parseCommandLine(
  words: readonly string[],
  flags: Flags,
  options: { command: string; takesIds?: boolean; otherFlags?: Record<string, Flags> } = { command: '' },
): Parsed {
  const values: Values = {};
  const positionals: string[] = [];
  const shorts = new Map(Object.entries(flags).flatMap(([name, spec]) => (spec.short ? [[spec.short, name] as const] : [])));
  const set = (name: string, value: string | boolean) => {
    const spec = flags[name]!;
    if (spec.multiple) (values[name] = (values[name] as string[] | undefined) ?? []).push(value as string);
    else values[name] = value; // the last one given wins, as in most command lines (an alias's default, then the user's)
  };
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === '--') {
      positionals.push(...words.slice(i + 1));
      break;
    }
    if (word.startsWith('--') && word.length > 2) {
      const at = word.indexOf('=');
      const name = at === -1 ? word.slice(2) : word.slice(2, at);
      const spec = flags[name];
      if (!spec) throw new UsageError(unknownFlag(`--${name}`, flags, options));
      if (spec.type === 'boolean') {
        if (at !== -1) throw new UsageError(`--${name} takes no value (got "${word.slice(at + 1)}")`);
        set(name, true);
        continue;
      }
      if (at !== -1) {
        set(name, word.slice(at + 1));
        continue;
      }
      if (i + 1 >= words.length) throw new UsageError(`--${name} needs a value: --${name} VALUE`);
      set(name, words[++i]!); // whatever it is, even `-s`: the flag asked for a value
      continue;
    }
    if (word.startsWith('-') && word.length > 1) {
      const name = shorts.get(word.slice(1));
      if (name && flags[name]!.type === 'boolean') {
        set(name, true);
        continue;
      }
      if (name) {
        if (i + 1 >= words.length) throw new UsageError(`${word} needs a value`);
        set(name, words[++i]!);
        continue;
      }
      // No flag of ours is one dash and several letters: where ids are expected, this is one.
      if (options.takesIds && /^-[A-Za-z0-9_-]{2,63}$/.test(word)) {
        positionals.push(word);
        continue;
      }
      throw new UsageError(unknownFlag(word, flags, options));
    }
    positionals.push(word);
  }
  return { values, positionals };
}

function unknownFlag(word: string, flags: Flags, options: { command: string; takesIds?: boolean; otherFlags?: Record<string, Flags> }): string {
  const name = word.replace(/^-+/, '');
  const where = options.command ? ` for ${options.command}` : '';
  const elsewhere = Object.entries(options.otherFlags ?? {}).filter(([command, f]) => command !== options.command && name in f).map(([command]) => command);
  if (elsewhere.length) return `unknown flag ${word}${where}: --${name} is a flag of ${elsewhere.join(' and ')}`;
  const guess = closest(name, Object.keys(flags));
  if (guess) return `unknown flag ${word}${where}: did you mean --${guess}?`;
  const idHint = options.takesIds ? ` (an id that starts with - goes after --: dewgrid ${options.command} -- ${word})` : '';
  return `unknown flag ${word}${where}${idHint}; \`dewgrid --help\` lists them`;
}

/** The candidate nearest `word` by edit distance, if it is near enough to be a slip of the keyboard. */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = candidate.startsWith(word) && word.length >= 3 ? 1 : distance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

/** Damerau-Levenshtein (optimal string alignment): swapped neighbours count once, as typos do. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
