// Writes a workflow's event history as proto3 JSON (the Temporal UI's and CLI's format), e.g. to attach a pod's IP lifecycle to a bug report or to add a
// replay fixture: node scripts/export-history.ts pod-ip/default/web-0 [runId] > history.json
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { loadCommonConfig } from '../src/config.ts';

const [workflowId, runId] = process.argv.slice(2);
if (!workflowId) {
  console.error('usage: node scripts/export-history.ts WORKFLOW_ID [RUN_ID]');
  process.exit(2);
}
const config = loadCommonConfig();
const connection = await Connection.connect({ address: config.temporalAddress });
try {
  const client = new Client({ connection, namespace: config.temporalNamespace });
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  process.stdout.write(`${historyToJSON(history)}\n`);
} finally {
  await connection.close();
}
