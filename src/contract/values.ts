// How every input check of Tidepool's (the plugin's, the agent's, the webhook's) tells a JSON object from
// other values, and quotes a value in an error message.

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An object whose values are all strings, such as an invocation's CNI_* environment. */
export function isStringMap(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((entry) => typeof entry === 'string');
}

/** A value as JSON for an error message, cut short so that one bad field cannot flood a log. */
export function showValue(value: unknown, maxLength = 80): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}
