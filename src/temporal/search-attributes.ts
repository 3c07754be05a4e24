import type { Connection } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from './names.ts';

type IndexedValueType = temporal.api.enums.v1.IndexedValueType;
// @temporalio/proto is CommonJS: its namespaces come through the default export under native ESM.
const { IndexedValueType } = proto.temporal.api.enums.v1;

/**
 * Registers Tidepool's custom search attributes in a namespace where they are missing and returns the names
 * it added. Idempotent; fails with a clear message when a name is registered with another type.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const custom = existing.customAttributes ?? {};
  const missing: Record<string, IndexedValueType> = {};
  for (const key of SEARCH_ATTRIBUTES) {
    const wanted = IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}`];
    const current = custom[key.name];
    if (current === undefined) {
      missing[key.name] = wanted;
    } else if (current !== wanted) {
      throw new Error(
        `search attribute ${key.name} is registered in namespace ${namespace} as ${IndexedValueType[current]}, ` +
          `but Tidepool needs ${IndexedValueType[wanted]}; remove it or use another namespace`,
      );
    }
  }
  const names = Object.keys(missing);
  if (names.length > 0) {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  }
  return names;
}

/** The `--search-attribute NAME=Type` arguments of `temporal server start-dev`. */
export function devServerSearchAttributeArgs(): string[] {
  const cliType = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as const;
  return SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${cliType[key.type]}`]);
}
