/** Small statistics for benchmark reports. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}

export const median = (values: number[]): number => quantile(values, 0.5);

export function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}
