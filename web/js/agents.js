// Browsers named for people: "Chrome 131 on Linux" rather than a user agent string.

/** "Chrome 131 on Linux" from a user agent string, or the start of it. */
export function shortAgent(agent) {
  if (!agent) return '';
  const browser =
    /(Edg|OPR|Firefox|Chrome|Chromium|Version)\/(\d+)/.exec(agent) ?? /(curl|Wget|node|undici)[/ ]?(\d*)/i.exec(agent);
  const system = /(Windows|Android|iPhone|iPad|Mac OS X|Linux|CrOS)/.exec(agent);
  if (!browser) return agent.slice(0, 40);
  const name = { Edg: 'Edge', OPR: 'Opera', Version: 'Safari' }[browser[1]] ?? browser[1];
  const os = system ? ` on ${system[1].replace('Mac OS X', 'macOS').replace('CrOS', 'ChromeOS')}` : '';
  return `${name} ${browser[2]}${os}`.trim();
}
