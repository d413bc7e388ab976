// Voice through the server's SFU: one RTCPeerConnection to the server, which
// forwards every other speaker of the room on it.
//
// The server makes every offer; this side only answers, so descriptions never
// cross. Signalling travels in `sfu` frames (docs/protocol.md):
//   → {"action":"join"}                       after the server echoed our voice join
//   ← {"action":"offer","version","sdp","upload","tracks"}
//   → {"action":"answer","version","sdp"}
//   ← {"action":"tracks","tracks":[{"mid","sid"}]}   a receive m-line changed speaker
//   ← {"action":"closed","reason"}              the server ended this connection
// The microphone goes on the m-line named `upload`; each other m-line carries
// the voice of the session `tracks` names for it (or nobody's, when null).

export class SfuLink {
  /**
   * `socket`: the page's Socket. `stream`: the microphone. `audioContainer`: where
   * the audio elements go. Callbacks: `onRemote(sid, stream|null)` when a speaker's
   * audio starts or stops arriving, `onState()` when the connection's state changes,
   * `onClosed(reason)` when the server ends the connection.
   */
  constructor({ socket, stream, audioContainer, onRemote, onState, onClosed }) {
    this.socket = socket;
    this.stream = stream;
    this.audioContainer = audioContainer;
    this.onRemote = onRemote;
    this.onState = onState;
    this.onClosed = onClosed;
    this.closed = false;
    this.uploadAttached = false;
    /** mid -> {sid, audio}: who each receive m-line carries now. */
    this.slots = new Map();
    this.queue = Promise.resolve();
    this.pc = new RTCPeerConnection({ iceServers: socket.iceServers, bundlePolicy: 'max-bundle' });
    this.pc.addEventListener('connectionstatechange', () => this.onState());
    this.stopListening = socket.on('sfu', ({ data }) => this.receive(data));
  }

  /** Asks the server for a connection; its offer follows. */
  start() {
    this.socket.send({ type: 'sfu', data: { action: 'join' } });
  }

  get state() {
    return this.pc.connectionState;
  }

  /** Frames are handled one at a time, in the order they came. */
  receive(data) {
    if (this.closed || !data) return;
    this.queue = this.queue
      .then(() => this.handle(data))
      .catch((error) => console.error('voice: server signalling not applied', error));
  }

  async handle(data) {
    if (this.closed) return;
    if (data.action === 'offer') {
      await this.answer(data);
    } else if (data.action === 'tracks') {
      this.applyTracks(data.tracks);
    } else if (data.action === 'closed') {
      this.onClosed(data.reason ?? '');
    }
  }

  async answer({ version, sdp, upload, tracks }) {
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    if (!this.uploadAttached) {
      const transceiver = this.pc.getTransceivers().find((t) => t.mid === upload);
      const microphone = this.stream.getAudioTracks()[0];
      if (!transceiver || !microphone) throw new Error('the server offered no m-line for the microphone');
      await transceiver.sender.replaceTrack(microphone);
      transceiver.direction = 'sendonly';
      this.uploadAttached = true;
    }
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.closed) return;
    this.socket.send({ type: 'sfu', data: { action: 'answer', version, sdp: this.pc.localDescription.sdp } });
    this.applyTracks(tracks);
  }

  /** Points each receive m-line's audio at the speaker the server names for it. */
  applyTracks(tracks) {
    for (const { mid, sid } of tracks ?? []) {
      const slot = this.slots.get(mid);
      if (slot?.sid === sid) continue;
      if (slot) this.release(mid);
      if (typeof sid !== 'string') continue;
      const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
      if (!transceiver) continue;
      const stream = new MediaStream([transceiver.receiver.track]);
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.dataset.sid = sid;
      // Chrome feeds a remote stream to Web Audio only while a media element plays it.
      audio.srcObject = stream;
      this.audioContainer.append(audio);
      audio.play().catch(() => {});
      this.slots.set(mid, { sid, audio });
      this.onRemote(sid, stream);
    }
  }

  release(mid) {
    const slot = this.slots.get(mid);
    if (!slot) return;
    this.slots.delete(mid);
    slot.audio.srcObject = null;
    slot.audio.remove();
    this.onRemote(slot.sid, null);
  }

  /** Closes the connection; the server ends it too when voice is left. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    for (const mid of [...this.slots.keys()]) this.release(mid);
    this.pc.close();
  }
}
