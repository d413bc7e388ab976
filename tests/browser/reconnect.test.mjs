// Losing the connection: a browser whose WebSocket is cut (no closing
// handshake, new connections dropped for a while) reconnects with backoff,
// rejoins its room, gets the messages it missed without duplicates, and sends
// what was typed meanwhile exactly once. A server restart (close 1012) is
// followed by a reconnection too.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, eventually, launchBrowser, openPage, register, screenshot } from './browser.mjs';
import { startProxy } from './proxy.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('network loss', () => {
  let proxy;
  let server;
  let browser;
  let gail;
  let hank;

  before(async () => {
    proxy = await startProxy();
    // The browsers see the proxy's address, so it is the server's public origin.
    server = await startServer({ PUBLIC_URL: proxy.base, CHAT_RATE_PER_SEC: '1000', CHAT_BURST: '1000' });
    proxy.setTarget(server.base);
    browser = await launchBrowser();
    gail = await openPage(browser, { base: proxy.base });
    hank = await openPage(browser, { base: proxy.base });
  });

  after(async () => {
    await browser?.close();
    await proxy?.stop();
    await server?.stop();
  });

  test('the page reconnects, rejoins and merges what it missed, without duplicates', async () => {
    await register(gail, { username: 'gail', email: 'gail@example.org', password: PASSWORD });
    await register(hank, { username: 'hank', email: 'hank@example.org', password: PASSWORD });
    for (const page of [gail, hank]) {
      await page.goto('/room/lobby');
      await page.locator('#connection[data-state="open"]').waitFor();
    }
    await gail.fill('#message-text', 'before the cut');
    await gail.press('#message-text', 'Enter');
    await hank.locator('#messages .message', { hasText: 'before the cut' }).waitFor();
    const sidBefore = await gail.evaluate(() => window.__switchboard.socket.sid);

    const cookie = (await gail.context().cookies()).find((c) => c.name === 'sb_session').value;
    assert.equal(proxy.cut(cookie, 2500), 1, 'one WebSocket cut');
    await gail.locator('#connection[data-state="reconnecting"]').waitFor();
    await hank.locator('#members .member', { hasText: 'gail' }).waitFor({ state: 'detached' });

    // Meanwhile: more than a joined history holds (200), so the rest is fetched.
    await hank.evaluate(() => {
      for (let i = 1; i <= 205; i += 1) window.__switchboard.socket.send({ type: 'chat', text: `missed ${i}` });
    });
    await hank.locator('#messages .message', { hasText: /missed 205$/ }).waitFor();
    await gail.fill('#message-text', 'typed while offline');
    await gail.press('#message-text', 'Enter');
    await gail.locator('.message-pending', { hasText: 'Waiting for the connection' }).waitFor();
    await screenshot(gail, 'room-reconnecting');

    await gail.locator('#connection[data-state="open"]').waitFor();
    assert.notEqual(await gail.evaluate(() => window.__switchboard.socket.sid), sidBefore, 'a new session');
    await hank.locator('#members .member', { hasText: 'gail' }).waitFor();

    // What was typed offline went out once, and came back matched by its nonce.
    await hank.locator('#messages .message', { hasText: 'typed while offline' }).waitFor();
    await gail.locator('#messages .message[data-id]', { hasText: 'typed while offline' }).waitFor();
    assert.equal(await gail.locator('#messages .message', { hasText: 'typed while offline' }).count(), 1);
    assert.equal(await gail.locator('.message-pending').count(), 0);

    // Every missed message, once each, in order.
    const texts = await eventually(async () => {
      const all = await gail.locator('#messages .message-text').allTextContents();
      return all.filter((t) => t.startsWith('missed ')).length === 205 ? all : null;
    }, { message: 'the 205 missed messages' });
    const missed = texts.filter((t) => t.startsWith('missed '));
    assert.deepEqual(missed, Array.from({ length: 205 }, (_, i) => `missed ${i + 1}`));
    assert.equal(texts.filter((t) => t === 'before the cut').length, 1);
    const ids = await gail.locator('#messages .message').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in id order');
    assertNoProblems(assert, gail, hank);
  });
});

describe('server restart', () => {
  let server;
  let browser;
  let ivy;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ivy = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('close 1012 is followed by a reconnection to the same room', async () => {
    await register(ivy, { username: 'ivy', email: 'ivy@example.org', password: PASSWORD });
    await ivy.goto('/room/lobby');
    await ivy.locator('#connection[data-state="open"]').waitFor();
    const states = [];
    await ivy.exposeFunction('__recordState', (state) => states.push(state));
    await ivy.evaluate(() => window.__switchboard.socket.on('status', ({ state }) => window.__recordState(state)));

    await server.restart();
    await eventually(() => states.includes('reconnecting'), { message: 'a reconnection' });
    await ivy.locator('#connection[data-state="open"]').waitFor();
    await ivy.fill('#message-text', 'back after the restart');
    await ivy.press('#message-text', 'Enter');
    await ivy.locator('#messages .message[data-id]', { hasText: 'back after the restart' }).waitFor();
    assert.ok(!states.includes('kicked') && !states.includes('signed-out'), states.join(','));
    assertNoProblems(assert, ivy);
  });
});
