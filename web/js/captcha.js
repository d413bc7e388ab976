// The arithmetic check question of the sign-in and registration forms.
//
// Markup it expects inside the fieldset: a `.captcha-question` label for the answer
// input, the input itself (name="captcha_answer") and a `.captcha-refresh` button.

import { api } from './api.js';
import { enableSection, setText } from './dom.js';

/**
 * Wires a captcha fieldset, hidden and disabled until `enable()`. Failures to load a
 * question go to `onError`, so the page shows them where it shows the form's errors.
 */
export function createCaptcha(fieldset, { onError }) {
  const question = fieldset.querySelector('.captcha-question');
  const answer = fieldset.querySelector('input[name="captcha_answer"]');
  const refreshButton = fieldset.querySelector('.captcha-refresh');
  let enabled = false;
  let id = null;

  async function load() {
    id = null;
    answer.value = '';
    setText(question, 'Loading a question…');
    try {
      const captcha = await api('GET', '/api/auth/captcha');
      id = captcha.id;
      setText(question, captcha.question);
    } catch (error) {
      setText(question, 'No question could be loaded.');
      onError(error);
    }
  }

  refreshButton.addEventListener('click', async () => {
    await load();
    answer.focus(); // reads out the new question, which labels the input
  });

  return {
    async enable() {
      enabled = true;
      enableSection(fieldset, true);
      await load();
    },

    /** Each question works once: call after every attempt the server refused. */
    async renew() {
      if (enabled) await load();
    },

    /** The request fields; none while the server has the CAPTCHA off. */
    fields() {
      return enabled ? { captcha_id: id ?? '', captcha_answer: answer.value.trim() } : {};
    },

    /** A `{captcha_answer: message}` problem for forms.onSubmit, or {}. */
    problems() {
      if (!enabled) return {};
      if (id === null) return { captcha_answer: 'The check question has not loaded. Ask for a new question.' };
      if (!/^\d+$/.test(answer.value.trim())) return { captcha_answer: 'Answer the check question with a number.' };
      return {};
    },
  };
}
