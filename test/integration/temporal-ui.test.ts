import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, deletePools, kubeConfig, stack } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

/** Debian's chromium, installed by stack/setup.sh. */
const CHROMIUM = process.env.TIDEPOOL_CHROMIUM ?? '/usr/bin/chromium';
// The suite's screenshots go to an ignored folder; `npm run docs:images` runs this test to refresh docs/images.
const IMAGES = path.resolve(import.meta.dirname, '../..', process.env.TIDEPOOL_DOCS_IMAGES === '1' ? 'docs/images' : '.cache/screenshots');

const tag = randomBytes(3).toString('hex');
// An IP no earlier run of this test on the same Temporal database is likely to have used.
const ip = `10.73.${randomInt(0, 256)}.${randomInt(1, 255)}`;
const poolName = `audit-${tag}`;
const nodeName = 'node-a';
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
let browser: Browser;

beforeAll(async () => {
  namespace = await createNamespace('audit');
  tidepool = await startTidepool({ nodeName });
  await new TidepoolClient(kubeConfig()).createPool(poolName, { subnet: '10.73.0.0/16', ips: [ip], gateway: '10.73.0.1' });
  // Playwright gives it a fresh profile. The flags keep Chromium from reaching for Google's services, which this machine's closed network refuses.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});


afterAll(async () => {
  await browser?.close();
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools([poolName]);
});

describe('the Temporal UI as the IP audit tool', () => {
  it('a person searches TidepoolIPs for an IP, opens its lifecycle and reads the allocate and the release', async () => {
    const podName = 'checkout-7d9f';
    const pod = await kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespacedPod({
        namespace: namespace.name,
        body: {
          metadata: { name: podName, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [poolName] }) } },
          spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
        },
      });
    const ref = { namespace: namespace.name, name: podName, uid: pod.metadata!.uid! };
    const containerID = randomBytes(32).toString('hex');
    const conf = netconf(tidepool.socketPath, tidepool.spoolDir);
    const add = await runCni('ADD', cniEnv(ref, containerID), conf);
    expect(add.code, add.stdout).toBe(0);
    await kubeConfig().makeApiClient(CoreV1Api).deleteNamespacedPod({ namespace: namespace.name, name: podName, gracePeriodSeconds: 0 });
    const del = await runCni('DEL', cniEnv(ref, containerID), conf);
    expect(del.code, del.stdout).toBe(0);
    const workflowId = podLifecycleWorkflowId(namespace.name, podName);
    await tidepool.client.workflow.getHandle(workflowId).result();

    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    const query = `TidepoolIPs = '${ip}'`;
    await page.goto(`${stack().temporalUi}/namespaces/${stack().temporalNamespace}/workflows?query=${encodeURIComponent(query)}`);
    const row = page.getByRole('link', { name: workflowId });
    await row.waitFor({ timeout: 30_000 });
    expect(await page.getByRole('link', { name: /^pod-ip\// }).count()).toBe(1);
    await row.click();

    // The timeline names each update and activity of the lifecycle: the CNI ADD and the CNI DEL.
    await expect.poll(() => page.locator('body').innerText(), { timeout: 30_000 }).toMatch(/\ballocate\b[\s\S]*\brelease\b/);
    await screenshot(page, 'temporal-ui-timeline.png');

    // The summary and the details are Markdown, rendered by the UI in frames of their own.
    await page.getByRole('link', { name: 'User Metadata' }).or(page.getByRole('tab', { name: 'User Metadata' })).first().click();
    const everyFrameText = async () => (await Promise.all(page.frames().map((f) => f.locator('body').innerText().catch(() => '')))).join('\n');
    await expect.poll(everyFrameText, { timeout: 30_000 }).toContain(`IPs ever held: ${ip}`);
    const text = await everyFrameText();
    expect(text).toContain(`IPs of pod ${namespace.name}/${podName}`);
    expect(text).toContain(`CNI ADD of container ${containerID.slice(0, 12)} on interface eth0`);
    expect(text).toContain(nodeName);
    expect(text).toMatch(/Released:? *a CNI DEL from the runtime \(CNIDel\)/);
    await screenshot(page, 'temporal-ui-details.png');
  });
});

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(IMAGES, { recursive: true });
  const file = path.join(IMAGES, name);
  await page.screenshot({ path: file });
  expect(statSync(file).size).toBeGreaterThan(10_000);
}
