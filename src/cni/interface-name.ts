const MAX_INTERFACE_NAME_BYTES = 15;

/**
 * Why `name` cannot be a Linux interface name (libcni's rule: at most 15 bytes, not "." or "..", no "/",
 * ":" or whitespace), or undefined when it can. Pure and free of Node APIs, so workflows use it too.
 */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (new TextEncoder().encode(name).length > MAX_INTERFACE_NAME_BYTES) return `is longer than ${MAX_INTERFACE_NAME_BYTES} bytes`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/u.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}
