// Files and voice notes for a room. Both are uploaded to the room's files
// endpoint; the server posts them to the room as messages, so they arrive
// over the WebSocket like any other message. The server takes them only from
// someone in the room at that moment (this page's socket, joined) who holds
// `files.upload`; the room page hides or disables the controls otherwise.

import { api, ApiError } from './api.js';
import { describeError } from './errors.js';

const VOICE_NOTE_TYPE = 'audio/webm;codecs=opus';

/**
 * Wires the "attach a file" input and the "record a voice note" button.
 * `room()` answers the current room code (it changes when an admin moves us).
 */
export function wireAttachments({ room, fileInput, recordButton, status }) {
  fileInput.addEventListener('change', () => {
    const file = fileInput.files?.[0];
    fileInput.value = '';
    if (file) upload(room(), file, file.name, status);
  });
  const recording = new VoiceNote(recordButton, status, (blob, name) => upload(room(), blob, name, status));
  recordButton.addEventListener('click', () => recording.toggle());
}

async function upload(room, blob, name, status) {
  const form = new FormData();
  form.append('file', blob, name);
  say(status, `Sending ${name}…`);
  try {
    await api('POST', `/api/rooms/${encodeURIComponent(room)}/files`, form);
    say(status, `Sent ${name}.`);
  } catch (error) {
    say(status, uploadProblem(error));
  }
}

function uploadProblem(error) {
  if (error instanceof ApiError && error.code === 'forbidden') {
    return 'Files can be sent only while you are connected to the room, with permission to send files.';
  }
  return describeError(error);
}

/** One microphone recording at a time, sent when it stops. */
class VoiceNote {
  constructor(button, status, send) {
    this.button = button;
    this.status = status;
    this.send = send;
    this.recorder = null;
  }

  async toggle() {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    try {
      await this.start();
    } catch (error) {
      this.recorder = null;
      this.show(false);
      say(this.status, `The microphone is not available (${error.message}).`);
    }
  }

  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const options = MediaRecorder.isTypeSupported(VOICE_NOTE_TYPE) ? { mimeType: VOICE_NOTE_TYPE } : undefined;
    const recorder = new MediaRecorder(stream, options);
    const chunks = [];
    recorder.addEventListener('dataavailable', (event) => {
      if (event.data.size > 0) chunks.push(event.data);
    });
    recorder.addEventListener('stop', () => {
      stream.getTracks().forEach((track) => track.stop());
      this.recorder = null;
      this.show(false);
      const blob = new Blob(chunks, { type: recorder.mimeType || 'audio/webm' });
      this.send(blob, `voice note ${new Date().toLocaleTimeString()}.webm`);
    });
    recorder.start();
    this.recorder = recorder;
    this.show(true);
  }

  show(recording) {
    this.button.setAttribute('aria-pressed', String(recording));
    this.button.textContent = recording ? 'Stop and send' : 'Record a voice note';
    if (recording) say(this.status, 'Recording a voice note…');
  }
}

function say(status, text) {
  status.textContent = text;
}
