/**
 * SQL written as tagged templates, sent with numbered parameters: sql`... WHERE id = ${id}` is
 * `{ text: '... WHERE id = $1', values: [id] }`. A template inside a template is spliced in, its
 * values numbered in turn, so a shared condition is written once (postgres.ts, eligible()).
 * Values never become SQL text.
 */
export class Sql {
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly unknown[],
  ) {}
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): Sql {
  return new Sql(strings, values);
}

export function render(query: Sql): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const walk = (q: Sql): string => {
    let text = q.strings[0]!;
    q.values.forEach((value, i) => {
      text += (value instanceof Sql ? walk(value) : `$${values.push(value)}`) + q.strings[i + 1]!;
    });
    return text;
  };
  return { text: walk(query), values };
}
