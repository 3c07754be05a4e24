// Part of `npm run docs:images`: plays `./dev demo` on the running `./dev up` stack, then takes the Temporal UI's
// view of the lifecycle that reclaimed the dead node's pod's IP into docs/images (demo-lifecycle*.png).
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { runDemo } from '../sim/demo.ts';

const CHROMIUM = process.env.TIDEPOOL_CHROMIUM ?? '/usr/bin/chromium';
const IMAGES = path.resolve(import.meta.dirname, '..', 'docs', 'images');

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`the Temporal UI did not show ${what} within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(IMAGES, name);
  await page.screenshot({ path: file });
  if (statSync(file).size < 10_000) throw new Error(`${file} is suspiciously small`);
  console.log(`wrote ${file}`);
}

async function main(): Promise<void> {
  const demo = await runDemo();
  mkdirSync(IMAGES, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    const query = `TidepoolIPs = '${demo.ip}'`;
    await page.goto(`${demo.temporalUi}/namespaces/${demo.temporalNamespace}/workflows?query=${encodeURIComponent(query)}`);
    const row = page.getByRole('link', { name: demo.workflowId });
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    await until('the allocate update and the podEvent signals', async () => /\ballocate\b[\s\S]*\bpodEvent\b/.test(await page.locator('body').innerText()));
    await screenshot(page, 'demo-lifecycle.png');
    await page.getByRole('link', { name: 'User Metadata' }).or(page.getByRole('tab', { name: 'User Metadata' })).first().click();
    const everyFrameText = async () => (await Promise.all(page.frames().map((f) => f.locator('body').innerText().catch(() => '')))).join('\n');
    // The summary and details are Markdown in frames of their own, rendered after the tab opens.
    await until('the current details', async () => {
      const text = await everyFrameText();
      return text.includes(`IPs ever held: ${demo.ip}`) && text.includes(`IPs of pod ${demo.workflowId.replace(/^pod-ip\//, '')}`);
    });
    await page.waitForTimeout(1000);
    await screenshot(page, 'demo-lifecycle-details.png');
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`docs:images: ${(error as Error).message}`);
    process.exit(1);
  },
);
