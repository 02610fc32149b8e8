/**
 * The options a partner sets on the embed's script tag (README, "On partner sites"), read the
 * same way by the loader (from `data-*` attributes) and by the card's frame (from its URL, which
 * anyone can forge: so the frame reads them again and trusts nothing else). Every option can only
 * make Dewgrid do less; a value that does not parse is ignored, with a warning naming it.
 */

export const POSITIONS = ['inline', 'bottom-right', 'bottom-left'] as const;
export const THEMES = ['auto', 'light', 'dark'] as const;
export type Position = (typeof POSITIONS)[number];
export type Theme = (typeof THEMES)[number];

/** The card's page on Dewgrid's origin. */
export const FRAME_PATH = '/embed/frame.html';
/** The page of the window a card opens for the person to confirm in (confirmation.ts). */
export const CONFIRM_PATH = '/embed/confirm.html';

export interface EmbedOptions {
  /** The project the partner means to show; the frame refuses to ask when its build trusts another. */
  project: string | null;
  position: Position;
  theme: Theme;
  /** The partner's cap on each task's share of a core, 0.1 to 1 (data-max-cpu="50" is 0.5). */
  maxCpu: number;
}

export type OptionName = 'project' | 'position' | 'theme' | 'max-cpu';

/**
 * @param get the raw value of an option (`data-<name>` on the script tag, `<name>` in the frame's URL), null when absent
 * @param invalid told of each value that is ignored, and what it should have been
 */
export function readEmbedOptions(get: (name: OptionName) => string | null, invalid: (name: OptionName, value: string, expected: string) => void): EmbedOptions {
  const oneOf = <T extends string>(name: OptionName, allowed: readonly T[]): T => {
    const value = get(name);
    if (value === null) return allowed[0]!;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    invalid(name, value, `one of ${allowed.join(', ')}`);
    return allowed[0]!;
  };
  let project = get('project');
  if (project !== null && (project.trim() === '' || project.length > 200)) {
    invalid('project', project, 'a project name of 1 to 200 characters');
    project = null;
  }
  const cpu = get('max-cpu');
  let maxCpu = 1;
  if (cpu !== null) {
    const percent = /^\s*\d{1,3}%?\s*$/.test(cpu) ? parseInt(cpu, 10) : NaN;
    if (percent >= 10 && percent <= 100) maxCpu = percent / 100;
    else invalid('max-cpu', cpu, 'a whole percentage from 10 to 100 (such as 50)');
  }
  return { project, position: oneOf('position', POSITIONS), theme: oneOf('theme', THEMES), maxCpu };
}

/** The frame's URL for a partner page with these options (the loader makes it, the frame reads it back). */
export function frameUrl(dewgridOrigin: string, partnerOrigin: string, options: EmbedOptions): string {
  const url = new URL(FRAME_PATH, dewgridOrigin);
  url.searchParams.set('partner', partnerOrigin);
  if (options.project !== null) url.searchParams.set('project', options.project);
  url.searchParams.set('theme', options.theme);
  url.searchParams.set('max-cpu', String(Math.round(options.maxCpu * 100)));
  return url.href;
}
