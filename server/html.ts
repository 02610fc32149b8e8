/**
 * HTML for the server's own pages, escaped by default: every value put into an `html` template
 * is escaped unless it is itself `html` (or `raw`, for markup written here). Batch names, task
 * ids, device ids and refusal details come from publishers and devices, so nothing they send
 * can become markup.
 */

/** Markup that is safe as it is: made by `html` or `raw`, never from outside text. */
export class Html {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Value = Html | string | number | null | undefined | false | readonly Value[];

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.markup;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** A template whose values are escaped (attribute values too: they are quoted in the templates). */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  return new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]!) : ''), ''));
}

/** Markup written in this code base (a stylesheet, a script): never pass outside text. */
export function raw(markup: string): Html {
  return new Html(markup);
}
