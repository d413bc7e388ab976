// Debian's Chromium driven by playwright-core (no browser download), and the
// steps the browser tests share: signing up through the real pages, solving the
// CAPTCHA from the question on the page, screenshots, and catching page errors
// and Content-Security-Policy violations.

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = resolve(HERE, '..', 'output', 'screenshots');

export const CHROMIUM = process.env.SB_CHROMIUM ?? '/usr/bin/chromium';
export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 375, height: 740 };

/** Every wait in the tests is bounded by this unless it says otherwise. */
export const WAIT_MS = 30_000;

/**
 * Starts Chromium. playwright-core gives each launch a fresh temporary profile
 * (user-data-dir) and each context its own cookies and storage. With `netns`
 * (tests/netns/netns.mjs) it runs inside that network namespace. `extraArgs`
 * go after the usual flags (the nginx test adds certificate and resolver ones).
 */
export function launchBrowser({ netns = null, extraArgs = [] } = {}) {
  const inside = netns ? netns.chromium(CHROMIUM) : { executablePath: CHROMIUM, args: [] };
  return chromium.launch({
    executablePath: inside.executablePath,
    env: inside.env,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      // Lets WebRTC use 127.0.0.1, so voice between the test's pages stays on loopback.
      '--allow-loopback-in-peer-connection',
      ...inside.args,
      ...extraArgs,
    ],
  });
}

/**
 * A new browser context (its own cookie jar) and page on `server`. The page's
 * JavaScript errors and CSP violations are collected in `page.problems`.
 */
export async function openPage(browser, server, { viewport = DESKTOP, permissions = [] } = {}) {
  const context = await browser.newContext({
    baseURL: server.base,
    viewport,
    permissions,
    locale: 'en-GB',
    timezoneId: 'Europe/Berlin',
  });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  watchProblems(page);
  return page;
}

export function watchProblems(page) {
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /Content.Security.Policy|Refused to/i.test(text)) {
      page.problems.push(`CSP: ${text}`);
    }
  });
}

/** Fails when a page had a JavaScript error or broke the CSP. */
export function assertNoProblems(assert, ...pages) {
  for (const page of pages) assert.deepEqual(page.problems, [], 'page errors or CSP violations');
}

export async function screenshot(page, name, { fullPage = true } = {}) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage, animations: 'disabled' });
  return path;
}

/**
 * Takes the same page at phone width too, then restores the desktop size. At
 * phone width nothing may stick out sideways (wide tables scroll in their box).
 */
export async function screenshotBoth(page, name) {
  await screenshot(page, name);
  await page.setViewportSize(PHONE);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await screenshot(page, `${name}-phone`);
  await page.setViewportSize(DESKTOP);
  if (width > PHONE.width) throw new Error(`${name}: the page is ${width} px wide at a phone's ${PHONE.width} px`);
}

/** The answer to the CAPTCHA question shown on the page ("What is 3 + 4?"). */
export async function solveCaptcha(page) {
  const label = page.locator('.captcha-question');
  await label.filter({ hasText: /\d/ }).waitFor();
  const question = await label.textContent();
  const answer = answerFor(question);
  await page.locator('#captcha-answer').fill(String(answer));
  return answer;
}

export function answerFor(question) {
  const match = /(-?\d+)\s*([+\-−×x*])\s*(-?\d+)/.exec(question);
  if (!match) throw new Error(`cannot read the CAPTCHA question: ${question}`);
  const [a, op, b] = [Number(match[1]), match[2], Number(match[3])];
  if (op === '+') return a + b;
  if (op === '-' || op === '−') return a - b;
  return a * b;
}

/** Registers through /register; answers when the home page shows the user. */
export async function register(page, { username, email, password, captcha = false }) {
  await page.goto('/register');
  await page.locator('#register-section').waitFor();
  await page.fill('#username', username);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.fill('#password-confirm', password);
  if (captcha) await solveCaptcha(page);
  await page.click('#register-form button[type="submit"]');
  await page.waitForURL((url) => url.pathname === '/');
  await page.locator('#home').waitFor();
}

/** Signs in through /login (optionally answering the CAPTCHA). */
export async function signIn(page, { login, password, captcha = false, next = null }) {
  await page.goto(next ? `/login?next=${encodeURIComponent(next)}` : '/login');
  await page.locator('#password-section').waitFor();
  await page.fill('#login', login);
  await page.fill('#password', password);
  if (captcha) await solveCaptcha(page);
  await page.click('#login-form button[type="submit"]');
}

/** Polls `check()` until it answers something truthy, at most `timeout` ms. */
export async function eventually(check, { timeout = WAIT_MS, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, interval));
  }
}
