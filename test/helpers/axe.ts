/** axe-core in a page or frame under test: its serious and critical findings, one line each. */
import type { Frame, Page } from 'playwright-core';

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** The sizes and colour schemes the accessibility tests check a page at: a phone and a desktop, light and dark. */
export const VIEWPORTS_AND_SCHEMES = [
  [{ width: 390, height: 844 }, 'light'],
  [{ width: 1280, height: 900 }, 'light'],
  [{ width: 390, height: 844 }, 'dark'],
  [{ width: 1280, height: 900 }, 'dark'],
] as const;

/** Injects axe once (as a script tag: a page's CSP must allow it, or the context bypass CSP) and runs it on the whole document. */
export async function seriousViolations(target: Page | Frame): Promise<string[]> {
  if (!(await target.evaluate(() => 'axe' in window))) await target.addScriptTag({ path: 'node_modules/axe-core/axe.min.js' });
  const violations = await target.evaluate(
    async () => (await (window as unknown as { axe: { run(context: Document): Promise<{ violations: AxeViolation[] }> } }).axe.run(document)).violations,
  );
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
