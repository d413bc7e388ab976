// Account rules checked before sending, so the common mistakes get an answer at once.
// The server checks them again and has the last word.

const USERNAME_PATTERN = /^[a-z0-9_.-]{3,32}$/;
const PASSWORD_MIN = 8;
const PASSWORD_MAX = 128;

/** A message when `username` breaks the rule, else null. */
export function usernameProblem(username) {
  if (USERNAME_PATTERN.test(username)) return null;
  if (/[A-Z]/.test(username) && USERNAME_PATTERN.test(username.toLowerCase())) {
    return 'Username: use lowercase letters only.';
  }
  return 'Username: 3 to 32 characters, using only a–z, 0–9 and _ . -';
}

/** A message when `password` is too short or too long, else null. */
export function passwordProblem(password) {
  // Counted in characters, not UTF-16 units, so an emoji counts once.
  const length = [...password].length;
  if (length >= PASSWORD_MIN && length <= PASSWORD_MAX) return null;
  return `Password: use ${PASSWORD_MIN} to ${PASSWORD_MAX} characters.`;
}

export function confirmationProblem(password, confirmation) {
  return password === confirmation ? null : 'The two passwords do not match.';
}

/** Drops the null entries of a `{field: message | null}` map, for forms.onSubmit. */
export function problems(entries) {
  return Object.fromEntries(Object.entries(entries).filter(([, message]) => message));
}
