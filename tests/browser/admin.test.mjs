// The admin console in a real browser: the live sessions table follows people
// as they connect, a kick shows its reason on the kicked page (which does not
// reconnect), a move takes the other page into the new room, and the users,
// roles, bans, audit log and message log tabs work.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  assertNoProblems,
  eventually,
  launchBrowser,
  openPage,
  register,
  screenshot,
  screenshotBoth,
  signIn,
} from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('the admin console', () => {
  let server;
  let browser;
  let admin;
  let erin;
  let finn;
  let breakout;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    [admin, erin, finn] = await Promise.all([1, 2, 3].map(() => openPage(browser, server)));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const sessionRow = (name) => admin.locator('#sessions-body tr', { has: admin.locator(`span.strong:text-is("${name}")`) });

  test('the admin made on the command line signs in and sees every tab', async () => {
    await server.createAdmin({ username: 'root' });
    await signIn(admin, { login: 'root', password: PASSWORD });
    await admin.waitForURL((url) => url.pathname === '/');
    await admin.locator('#admin-badge').waitFor();
    await admin.click('#admin-link');
    await admin.waitForURL((url) => url.pathname === '/admin');
    await admin.locator('#sessions-status[data-state="open"]').waitFor();
    const tabs = await admin.locator('[role="tab"]:not([hidden])').allTextContents();
    assert.deepEqual(tabs, ['Live sessions', 'Users', 'Roles & permissions', 'Bans', 'Audit log', 'Message log']);
    await sessionRow('root').waitFor();
  });

  test('the live sessions table updates as people connect and enter rooms', async () => {
    await register(erin, { username: 'erin', email: 'erin@example.org', password: PASSWORD });
    await register(finn, { username: 'finn', email: 'finn@example.org', password: PASSWORD });
    breakout = await erin.evaluate(async () => {
      const { api } = await import('/js/api.js');
      return (await api('POST', '/api/rooms', { name: 'Breakout' })).code;
    });

    await erin.goto('/room/lobby');
    await finn.goto('/room/lobby');
    await erin.locator('#connection[data-state="open"]').waitFor();
    await finn.locator('#connection[data-state="open"]').waitFor();
    await finn.fill('#message-text', 'Finn was here');
    await finn.press('#message-text', 'Enter');

    await sessionRow('erin').locator('td', { hasText: 'lobby' }).waitFor();
    await sessionRow('finn').locator('td', { hasText: 'lobby' }).waitFor();
    await finn.click('#voice-join');
    await sessionRow('finn').locator('td[data-voice="on"]').waitFor();
    // A server mute from the console: shown in the row and on finn's page, then lifted.
    await sessionRow('finn').locator('button', { hasText: /^Mute$/ }).click();
    await sessionRow('finn').locator('td', { hasText: 'muted by a moderator' }).waitFor();
    await finn.locator('#room-notice', { hasText: 'A moderator has muted you' }).waitFor();
    await sessionRow('finn').locator('button', { hasText: /^Unmute$/ }).click();
    await sessionRow('finn').locator('button', { hasText: /^Mute$/ }).waitFor();
    await finn.click('#voice-mute');
    await sessionRow('finn').locator('td[data-voice="muted"]').waitFor();
    await finn.click('#voice-leave');
    await sessionRow('finn').locator('td[data-voice="off"]').waitFor();
    await screenshotBoth(admin, 'admin-sessions');
  });

  test('a kick shows the reason on the kicked page, which stays disconnected', async () => {
    await sessionRow('erin').locator('button', { hasText: 'Kick' }).click();
    const dialog = admin.locator('#kick-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="reason"]').fill('Take a short break');
    await screenshot(admin, 'admin-kick-dialog', { fullPage: false });
    await dialog.locator('button[type="submit"]').click();
    await dialog.waitFor({ state: 'hidden' });

    await erin.locator('#ended', { hasText: 'Reason: Take a short break' }).waitFor();
    assert.equal(await erin.getAttribute('#connection', 'data-state'), 'kicked');
    await sessionRow('erin').waitFor({ state: 'detached' });
    await screenshot(erin, 'room-kicked');
    // No reconnection after close code 4001.
    await erin.waitForTimeout(1500);
    assert.equal(await erin.getAttribute('#connection', 'data-state'), 'kicked');
    assert.equal(await sessionRow('erin').count(), 0);
  });

  test('a move takes the page into the new room', async () => {
    await sessionRow('finn').locator('button', { hasText: 'Move' }).click();
    const dialog = admin.locator('#move-dialog');
    await dialog.waitFor();
    await dialog.locator('input[name="room"]').fill(breakout);
    await dialog.locator('button[type="submit"]').click();
    await dialog.waitFor({ state: 'hidden' });

    await finn.waitForURL((url) => url.pathname === `/room/${breakout}`);
    await finn.locator('#room-name', { hasText: 'Breakout' }).waitFor();
    await finn.locator('#room-notice', { hasText: 'moved you to “Breakout”' }).waitFor();
    assert.equal(await finn.locator('#messages .message', { hasText: 'Finn was here' }).count(), 0);
    await sessionRow('finn').locator('td', { hasText: breakout }).waitFor();
    // The moved page still works in its new room.
    await finn.fill('#message-text', 'Hello from the breakout room');
    await finn.press('#message-text', 'Enter');
    await finn.locator('#messages .message[data-id]', { hasText: 'Hello from the breakout room' }).waitFor();
    await screenshot(finn, 'room-moved');
  });

  test('users: search, promote and demote, and ban from the table', async () => {
    await admin.click('#tab-users');
    await admin.waitForURL((url) => url.hash === '#users');
    const finnRow = admin.locator('#users-body tr', { hasText: 'finn@example.org' });
    await finnRow.waitFor();
    assert.equal(await admin.textContent('#users-summary'), '3 accounts');

    await admin.fill('#users-q', 'fin');
    await admin.click('#users-search button[type="submit"]');
    await eventually(async () => (await admin.locator('#users-body tr').count()) === 1, { message: 'one match' });

    await finnRow.locator('button', { hasText: 'Make admin' }).click();
    await admin.locator('#users-feedback', { hasText: 'finn is now an admin' }).waitFor();
    await finnRow.locator('button', { hasText: 'Remove admin' }).click();
    await admin.locator('#users-feedback', { hasText: 'no longer an admin' }).waitFor();

    await finnRow.locator('button', { hasText: 'Roles…' }).click();
    const rolesDialog = admin.locator('#roles-dialog');
    await rolesDialog.locator('input[value="moderator"]').check();
    await rolesDialog.locator('button[type="submit"]').click();
    await admin.locator('#users-feedback', { hasText: 'moderator' }).waitFor();

    await admin.fill('#users-q', '');
    await admin.click('#users-search button[type="submit"]');
    await admin.locator('#users-body tr', { hasText: 'erin@example.org' }).waitFor();
    await screenshotBoth(admin, 'admin-users');

    await admin.locator('#users-body tr', { hasText: 'erin@example.org' }).locator('button', { hasText: 'Ban…' }).click();
    const banDialog = admin.locator('#ban-dialog');
    await banDialog.locator('input[name="reason"]').fill('Spamming the lobby');
    await banDialog.locator('button[type="submit"]').click();
    await admin.locator('#users-feedback', { hasText: 'erin is banned' }).waitFor();
  });

  test('roles & permissions: create a role and grant and revoke a permission', async () => {
    await admin.click('#tab-roles');
    await admin.locator('#roles-list .role[data-role="moderator"]').waitFor();
    await admin.fill('#role-name', 'helper');
    await admin.click('#role-create button[type="submit"]');
    const helper = admin.locator('#roles-list .role[data-role="helper"]');
    await helper.waitFor();
    await helper.locator('select').selectOption('sessions.view');
    await helper.locator('button', { hasText: 'Add' }).click();
    await helper.locator('.chip', { hasText: 'sessions.view' }).waitFor();
    await admin.fill('#permission-name', 'rooms.archive');
    await admin.click('#permission-create button[type="submit"]');
    await admin.locator('#permissions-list .chip', { hasText: 'rooms.archive' }).waitFor();
    await screenshotBoth(admin, 'admin-roles');
    await helper.locator('button[aria-label="Remove sessions.view from helper"]').click();
    await helper.locator('.chip', { hasText: 'sessions.view' }).waitFor({ state: 'detached' });
  });

  test('bans: the ban from the users tab is listed and can be lifted', async () => {
    await admin.click('#tab-bans');
    const row = admin.locator('#bans-body tr', { hasText: 'Spamming the lobby' });
    await row.waitFor();
    await admin.locator('#ban-create').evaluate((form) => form.closest('details').setAttribute('open', ''));
    await screenshotBoth(admin, 'admin-bans');

    // The banned user cannot come back.
    await erin.goto('/');
    await erin.waitForURL((url) => url.pathname === '/login');

    await row.locator('button', { hasText: 'Lift…' }).click();
    await admin.locator('#confirm-dialog button[type="submit"]').click();
    await admin.locator('#bans-feedback', { hasText: 'was lifted' }).waitFor();
    await admin.locator('#bans-body .empty-row').waitFor();
  });

  test('the audit log and the message log filter their entries', async () => {
    await admin.click('#tab-logs');
    await admin.locator('#logs-body tr').first().waitFor();
    await admin.fill('#logs-action', 'kick');
    await admin.click('#logs-filters button[type="submit"]');
    await eventually(async () => (await admin.textContent('#logs-summary')) === '1 entry', { message: 'one kick' });
    const kick = admin.locator('#logs-body tr', { hasText: 'kick' });
    assert.match(await kick.textContent(), /Take a short break/);
    await screenshotBoth(admin, 'admin-logs');

    await admin.click('#tab-messages');
    await admin.locator('#messages-body tr', { hasText: 'Finn was here' }).waitFor();
    await admin.fill('#messages-q', 'breakout');
    await admin.click('#messages-filters button[type="submit"]');
    await eventually(async () => (await admin.textContent('#messages-summary')) === '1 message', { message: 'one message' });
    assert.match(await admin.locator('#messages-body tr').textContent(), /Hello from the breakout room/);
    assert.match(await admin.locator('#messages-body tr').textContent(), /127\.0\.0\.1/);
    await screenshotBoth(admin, 'admin-messages');
    assertNoProblems(assert, admin, erin, finn);
  });
});
