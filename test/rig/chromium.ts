/**
 * Debian's Chromium driven by playwright-core (`npx playwright install` cannot download here), with
 * the flags TEST-RIG.md gives: headless, no sandbox (root), and none of the background networking
 * that this machine's closed network would refuse.
 */
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Records into `problems` every console error, page error, failed request and HTTP error of `p`. */
export function watchProblems(p: Page, problems: string[]): void {
  p.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  p.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  p.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`));
  p.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
}

/** The browser's canvas, as much of it as the page code below touches (the test build has no DOM types). */
interface BrowserCanvas {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}

/** A canvas's size and how many of its pixels are not transparent (inked -1: no 2d context). */
export function canvasInk(canvas: Locator): Promise<{ width: number; height: number; inked: number }> {
  return canvas.evaluate((el) => {
    const c = el as unknown as BrowserCanvas;
    const ctx = c.getContext('2d');
    if (ctx === null) return { width: c.width, height: c.height, inked: -1 };
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    let inked = 0;
    for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) inked++;
    return { width: c.width, height: c.height, inked };
  });
}
