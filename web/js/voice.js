// Voice: a WebRTC audio mesh between the members of a room who are in voice,
// or one connection to the server's SFU (sfu.js), which forwards the others'
// voice. Which one follows the server's voice mode (`hello`'s `voice`):
// `p2p` always the mesh, `sfu` always the SFU, and `auto` the mesh until the
// room needs the SFU: a connection to another member that is not up within
// FALLBACK_TIMEOUT_MS, or fails again after an ICE restart; more members in
// voice than the mesh limit; or anyone in the room's voice already on the SFU
// (a member's `path`). Then this side moves to the SFU, and everyone else
// follows when they see its `path`, so the whole room's voice moves together
// and everyone keeps hearing everyone. It stays there until this side leaves
// voice.
//
// Each pair of members holds one RTCPeerConnection, negotiated with the
// "perfect negotiation" pattern: either side may make an offer at any time, and
// when two offers cross, the polite side (the one whose sid sorts first) gives
// way. Crossing offers are kept rare on purpose (Chrome's implicit rollback can
// leave a connection without ICE candidates): the server sends every member of
// a room the `voice_state` frames in one order, so everyone agrees who joined
// voice later, and the later one makes the first offer while the earlier one
// waits for it. Offers, answers and ICE candidates travel through the server as
// `{"type":"signal","to":sid,"data":{"description":{type,sdp}}}` and
// `{"data":{"candidate":RTCIceCandidateInit}}`; the ICE servers and the ICE
// transport policy are the ones of the socket's `hello`.
//
// Whether someone is speaking is measured locally from the audio level of each
// stream (an AnalyserNode), for the own microphone and every remote stream.

import { SfuLink } from './sfu.js';

const AUDIO_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: false,
};

/** Audio level (RMS of the samples, 0 to 1) above which a stream counts as speech. */
const SPEAKING_LEVEL = 0.02;
/** A speaker stays "speaking" this long after the level drops, so it does not flicker. */
const SPEAKING_HOLD_MS = 350;
const METER_INTERVAL_MS = 100;

/** A problem worth telling the person about, worded for them. */
export class VoiceError extends Error {
  constructor(message) {
    super(message);
    this.name = 'VoiceError';
  }
}

export class Voice {
  /**
   * `socket`: the page's Socket. `members()`: the room's members now (with `sid`,
   * `in_voice`). `audioContainer`: where remote audio elements go. Callbacks:
   * `onChange()` when joining, leaving or muting changes; `onSpeaking(sid, bool)`;
   * `onNotice(message)` for problems found along the way; `onPeer(sid, state)`
   * when a connection's state changes.
   */
  constructor({ socket, members, audioContainer, onChange, onSpeaking, onNotice, onPeer }) {
    this.socket = socket;
    this.members = members;
    this.audioContainer = audioContainer;
    this.onChange = onChange ?? (() => {});
    this.onSpeaking = onSpeaking ?? (() => {});
    this.onNotice = onNotice ?? (() => {});
    this.onPeer = onPeer ?? (() => {});
    /** sid -> Peer. Also read by the browser tests through window.__switchboard. */
    this.peers = new Map();
    /** The connection to the server's SFU, when voice goes through it. */
    this.sfu = null;
    /** sid -> LevelMeter for the voices that arrive through the SFU. */
    this.sfuMeters = new Map();
    this.inVoice = false;
    this.joining = false;
    /** Sent "join voice", waiting for the server's echo of it (see memberVoiceChanged). */
    this.awaitingEcho = false;
    this.muted = false;
    this.stream = null;
    this.audio = null;
    this.localMeter = null;
    this.meterTimer = null;
    /** performance.now() when the person asked to join, for measuring set-up time. */
    this.joinStartedAt = null;
    /** In `auto`: a connection of this side's could not be made directly. */
    this.fellBack = false;
    /** performance.now() when voice moved to the SFU, and why (read by the browser tests). */
    this.movedToSfu = null;
    socket.on('signal', (frame) => this.onSignal(frame));
    socket.on('error', (frame) => {
      if (frame.code === 'sfu_unavailable') this.onNotice(SERVER_RELAY_UNAVAILABLE);
    });
  }

  static get supported() {
    return Boolean(navigator.mediaDevices?.getUserMedia) && typeof RTCPeerConnection === 'function';
  }

  /**
   * Joins voice: the microphone, then a connection to everyone already in voice.
   * Call it from the click that asks for it: the audio context needs that gesture.
   */
  async join() {
    if (this.inVoice || this.joining) return;
    if (!Voice.supported) {
      throw new VoiceError('Voice needs a secure connection (https) and a browser with WebRTC.');
    }
    this.joining = true;
    this.joinStartedAt = performance.now();
    this.onChange();
    // Created before the first await, while the click still counts as a gesture.
    this.audio = new AudioContext();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia(AUDIO_CONSTRAINTS);
    } catch (error) {
      this.joining = false;
      this.closeAudio();
      this.onChange();
      throw new VoiceError(microphoneProblem(error));
    }
    if (!this.joining) {
      // Left (or was moved) while the browser asked for the microphone.
      this.stopStream();
      this.closeAudio();
      return;
    }
    this.muted = false;
    this.joining = false;
    this.inVoice = true;
    this.audio.resume().catch(() => {});
    this.localMeter = new LevelMeter(this.audio, this.stream);
    this.startMetering();
    this.announce();
    this.onChange();
  }

  /** Leaves voice: every connection closed, the microphone released. */
  leave({ notify = true } = {}) {
    const wasIn = this.inVoice;
    this.joining = false;
    this.inVoice = false;
    this.awaitingEcho = false;
    this.muted = false;
    this.fellBack = false;
    this.movedToSfu = null;
    for (const sid of [...this.peers.keys()]) this.closePeer(sid);
    this.closeSfu();
    this.stopMetering();
    this.localMeter?.close();
    this.localMeter = null;
    this.stopStream();
    this.closeAudio();
    if (wasIn && notify) this.socket.send({ type: 'voice', action: 'leave' });
    if (this.socket.sid) this.onSpeaking(this.socket.sid, false);
    this.onChange();
  }

  setMuted(muted) {
    if (!this.inVoice) return;
    this.muted = muted;
    this.applySilence();
    this.socket.send({ type: 'mute', muted });
    this.onChange();
  }

  toggleMute() {
    this.setMuted(!this.muted);
  }

  /**
   * After a reconnection the server knows a new session that is not in voice:
   * tell it again, and connect afresh (the others dropped the old connection).
   */
  rejoin() {
    if (!this.inVoice) return;
    for (const sid of [...this.peers.keys()]) this.closePeer(sid);
    this.closeSfu();
    this.announce();
  }

  /** Whether this side's voice should go through the SFU now (see the top). */
  get viaServer() {
    const mode = this.socket.voiceMode;
    if (mode !== 'auto') return mode === 'sfu';
    if (this.fellBack) return true;
    const others = this.members().filter((m) => m.in_voice && m.sid !== this.socket.sid);
    return others.length + 1 > this.socket.meshLimit || others.some((m) => m.path === 'sfu');
  }

  /** Closes the mesh and connects through the SFU; `reason` is kept for the tests. */
  moveToSfu(reason) {
    if (!this.inVoice || this.awaitingEcho || this.sfu) return;
    for (const sid of [...this.peers.keys()]) this.closePeer(sid);
    this.movedToSfu = { at: performance.now(), reason };
    this.openSfu();
    this.onChange();
  }

  /**
   * A direct connection to `sid` could not be made (not up in time, or failed
   * after an ICE restart). In `auto` the room's voice moves to the SFU; with
   * peer-to-peer only, the person is told.
   */
  fallBack(sid) {
    if (this.socket.voiceMode !== 'auto') {
      this.onNotice(SERVER_RELAY_UNAVAILABLE);
      return;
    }
    this.fellBack = true;
    this.moveToSfu(`no direct connection to ${sid}`);
  }

  /** Whether a member's voice is silenced by a moderator, or this side is deafened. */
  silenced(sid) {
    const own = this.members().find((m) => m.sid === this.socket.sid);
    const member = this.members().find((m) => m.sid === sid);
    return Boolean(own?.server_deafened || member?.server_muted || member?.server_deafened);
  }

  /**
   * Applies moderators' mutes and deafens in the mesh, where no server sits
   * between the members: the microphone sends silence while this side is muted
   * by anyone, and a muted or deafened member's audio is not played (nor is
   * anyone's to a deafened member). On the SFU the server stops forwarding too.
   */
  applySilence() {
    const own = this.members().find((m) => m.sid === this.socket.sid);
    const serverSilenced = Boolean(own?.server_muted || own?.server_deafened);
    for (const track of this.stream?.getAudioTracks() ?? []) track.enabled = !this.muted && !serverSilenced;
    for (const [sid, peer] of this.peers) {
      if (peer.audioElement) peer.audioElement.muted = this.silenced(sid);
    }
    for (const slot of this.sfu?.slots.values() ?? []) slot.audio.muted = this.silenced(slot.sid);
  }

  /**
   * A member's voice state changed (a `voice_state` frame), after the member list
   * took it in. When the server echoes the own join, the members already in voice
   * are exactly the ones who joined earlier: this side calls them. Those who join
   * later call this side.
   */
  memberVoiceChanged(sid, inVoice) {
    this.applySilence();
    if (sid === this.socket.sid) {
      if (inVoice && this.awaitingEcho && this.inVoice) {
        this.awaitingEcho = false;
        if (this.viaServer) this.openSfu();
        else this.connectToAll();
      }
      return;
    }
    if (!inVoice) this.closePeer(sid);
    if (this.viaServer) this.moveToSfu(`the room's voice moved (${sid})`);
  }

  /** A member left the room. */
  memberLeft(sid) {
    this.closePeer(sid);
  }

  announce() {
    this.awaitingEcho = true;
    this.socket.send({ type: 'voice', action: 'join' });
    if (this.muted) this.socket.send({ type: 'mute', muted: true });
  }

  connectToAll() {
    for (const member of this.members()) {
      if (member.in_voice && member.sid !== this.socket.sid && !this.peers.has(member.sid)) {
        this.peers.set(member.sid, new Peer(this, member.sid, { initiator: true }));
      }
    }
  }

  openSfu() {
    this.closeSfu();
    this.sfu = new SfuLink({
      socket: this.socket,
      stream: this.stream,
      audioContainer: this.audioContainer,
      onRemote: (sid, stream) => {
        this.sfuStream(sid, stream);
        this.applySilence();
      },
      onState: () => this.onChange(),
      onClosed: (reason) => {
        this.onNotice(`Voice through the server stopped (${reason || 'no reason given'}). Join voice again.`);
        this.leave();
      },
    });
    this.sfu.start();
  }

  closeSfu() {
    this.sfu?.close();
    this.sfu = null;
  }

  /** A voice arriving through the SFU started (`stream`) or stopped (null). */
  sfuStream(sid, stream) {
    this.sfuMeters.get(sid)?.close();
    this.sfuMeters.delete(sid);
    this.onSpeaking(sid, false);
    if (stream && this.audio) this.sfuMeters.set(sid, new LevelMeter(this.audio, stream));
  }

  closePeer(sid) {
    const peer = this.peers.get(sid);
    if (!peer) return;
    this.peers.delete(sid);
    peer.close();
    this.onSpeaking(sid, false);
    this.onPeer(sid, 'closed');
  }

  onSignal(frame) {
    if (!this.inVoice || this.sfu || typeof frame.from !== 'string' || !frame.data) return;
    let peer = this.peers.get(frame.from);
    if (!peer) {
      // Only an offer starts a connection; a late candidate of a closed one does not.
      if (frame.data.description?.type !== 'offer') return;
      // Answering an offer sends this microphone: only to someone the member list
      // shows in voice (the server checks as well; this side does not rely on it).
      if (!this.isShownInVoice(frame.from)) return;
      peer = new Peer(this, frame.from, { initiator: false });
      this.peers.set(frame.from, peer);
    }
    peer.receive(frame.data);
  }

  isShownInVoice(sid) {
    return this.members().some((member) => member.sid === sid && member.in_voice);
  }

  sendSignal(to, data) {
    this.socket.send({ type: 'signal', to, data });
  }

  startMetering() {
    this.stopMetering();
    this.meterTimer = setInterval(() => this.measure(), METER_INTERVAL_MS);
  }

  stopMetering() {
    clearInterval(this.meterTimer);
    this.meterTimer = null;
  }

  measure() {
    const now = performance.now();
    if (this.localMeter && this.socket.sid) {
      const speaking = this.localMeter.update(now, !this.muted);
      if (speaking !== null) this.onSpeaking(this.socket.sid, speaking);
    }
    for (const [sid, peer] of this.peers) {
      const speaking = peer.meter?.update(now, true) ?? null;
      if (speaking !== null) this.onSpeaking(sid, speaking);
    }
    for (const [sid, meter] of this.sfuMeters) {
      const speaking = meter.update(now, true);
      if (speaking !== null) this.onSpeaking(sid, speaking);
    }
  }

  stopStream() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
  }

  closeAudio() {
    this.audio?.close().catch(() => {});
    this.audio = null;
  }
}

const SERVER_RELAY_UNAVAILABLE =
  'A voice connection could not be made directly, and this server has no relay to carry it. ' +
  'A network between you may be blocking it.';

/** A connection still not up after this long is restarted like a failed one. */
const CONNECT_TIMEOUT_MS = 15_000;
/** In `auto`, a first connection not up after this long moves voice to the SFU. */
const FALLBACK_TIMEOUT_MS = 5_000;

/** One member's connection, negotiated with the perfect-negotiation pattern. */
class Peer {
  /** `initiator`: this side makes the first offer (it joined voice later). */
  constructor(voice, sid, { initiator }) {
    this.voice = voice;
    this.sid = sid;
    this.initiator = initiator;
    this.polite = voice.socket.sid < sid;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.restartedIce = false;
    this.closed = false;
    this.meter = null;
    this.audioElement = null;
    this.connectedAt = null;
    this.queue = Promise.resolve();
    this.tracksAdded = false;
    // ICE_TRANSPORT_POLICY from `hello`: 'relay' keeps every call on TURN.
    this.pc = new RTCPeerConnection({
      iceServers: voice.socket.iceServers,
      iceTransportPolicy: voice.socket.iceTransportPolicy,
    });
    this.pc.addEventListener('negotiationneeded', () => this.offer());
    this.pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) voice.sendSignal(sid, { candidate: candidate.toJSON() });
    });
    this.pc.addEventListener('track', (event) => this.play(event));
    this.pc.addEventListener('connectionstatechange', () => this.stateChanged());
    const firstWait = voice.socket.voiceMode === 'auto' ? FALLBACK_TIMEOUT_MS : CONNECT_TIMEOUT_MS;
    this.watchdog = setTimeout(() => this.checkConnected(), firstWait);
    // The initiator's tracks start the negotiation; the other side adds its own
    // when the offer is in, so they ride on the answer (no second offer).
    if (initiator) this.addLocalTracks();
  }

  addLocalTracks() {
    if (this.tracksAdded || !this.voice.stream) return;
    this.tracksAdded = true;
    for (const track of this.voice.stream.getTracks()) this.pc.addTrack(track, this.voice.stream);
  }

  async offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.sendDescription();
    } catch (error) {
      console.error('voice: offer failed', error);
    } finally {
      this.makingOffer = false;
    }
  }

  sendDescription() {
    const { type, sdp } = this.pc.localDescription;
    this.voice.sendSignal(this.sid, { description: { type, sdp } });
  }

  /** Signals are handled one at a time, in the order they came. */
  receive(data) {
    this.queue = this.queue
      .then(() => this.handle(data))
      .catch((error) => console.error('voice: signal not applied', error));
  }

  async handle({ description, candidate }) {
    if (this.closed) return;
    if (description) {
      const readyForOffer =
        !this.makingOffer && (this.pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === 'answer';
      await this.pc.setRemoteDescription(description);
      this.settingRemoteAnswer = false;
      if (description.type === 'offer') {
        this.addLocalTracks();
        await this.pc.setLocalDescription();
        this.sendDescription();
      }
    } else if (candidate) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  play({ track, streams }) {
    const stream = streams[0] ?? new MediaStream([track]);
    if (!this.audioElement) {
      this.audioElement = document.createElement('audio');
      this.audioElement.autoplay = true;
      this.voice.audioContainer.append(this.audioElement);
    }
    // Chrome feeds a remote stream to Web Audio only while a media element plays it.
    this.audioElement.srcObject = stream;
    this.audioElement.muted = this.voice.silenced(this.sid);
    this.audioElement.play().catch(() => {});
    this.meter?.close();
    this.meter = this.voice.audio ? new LevelMeter(this.voice.audio, stream) : null;
  }

  stateChanged() {
    const state = this.pc.connectionState;
    if (state === 'connected' && this.connectedAt === null) this.connectedAt = performance.now();
    if (state === 'failed') this.recover();
    this.voice.onPeer(this.sid, state);
  }

  /** A failed connection gets one ICE restart; failing again, the SFU. */
  recover() {
    if (this.closed) return;
    if (this.restartedIce) {
      this.voice.fallBack(this.sid);
      return;
    }
    this.restartedIce = true;
    // restartIce() makes the next offer carry new ICE credentials; the side that
    // made the first offer makes this one too, so the two restarts do not cross.
    if (this.initiator) this.pc.restartIce();
    this.watchdog = setTimeout(() => this.checkConnected(), CONNECT_TIMEOUT_MS);
  }

  /** In `auto`, a connection never up in time goes straight to the SFU. */
  checkConnected() {
    if (this.closed || this.pc.connectionState === 'connected') return;
    if (this.connectedAt === null && this.voice.socket.voiceMode === 'auto') {
      this.voice.fallBack(this.sid);
      return;
    }
    this.recover();
  }

  close() {
    this.closed = true;
    clearTimeout(this.watchdog);
    this.pc.close();
    this.meter?.close();
    this.meter = null;
    if (this.audioElement) {
      this.audioElement.srcObject = null;
      this.audioElement.remove();
    }
  }
}

/**
 * The audio level of one stream, and whether it currently counts as speech.
 * The analyser holds more samples than arrive between two readings, so a short
 * sound between readings is never missed; the level is the loudest 10 ms within
 * that window, so a short sound is not averaged away by the silence around it.
 */
class LevelMeter {
  constructor(context, stream) {
    this.source = context.createMediaStreamSource(stream);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = analyserSize(context.sampleRate);
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.chunk = Math.max(1, Math.round(context.sampleRate / 100));
    this.speaking = false;
    this.lastLoud = 0;
  }

  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let loudest = 0;
    for (let start = 0; start + this.chunk <= this.samples.length; start += this.chunk) {
      let sum = 0;
      for (let i = start; i < start + this.chunk; i += 1) sum += this.samples[i] * this.samples[i];
      loudest = Math.max(loudest, sum / this.chunk);
    }
    return Math.sqrt(loudest);
  }

  /** Answers the new speaking state when it changed, else null. */
  update(now, audible) {
    if (audible && this.level() > SPEAKING_LEVEL) this.lastLoud = now;
    const speaking = audible && now - this.lastLoud < SPEAKING_HOLD_MS;
    if (speaking === this.speaking) return null;
    this.speaking = speaking;
    return speaking;
  }

  close() {
    this.source.disconnect();
    this.analyser.disconnect();
  }
}

/** The smallest analyser size (a power of two) that spans twice the metering interval. */
function analyserSize(sampleRate) {
  const wanted = (sampleRate * 2 * METER_INTERVAL_MS) / 1000;
  let size = 2048;
  while (size < wanted && size < 32768) size *= 2;
  return size;
}

function microphoneProblem(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The browser was not allowed to use the microphone. Allow it for this site and try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found. Connect one and try again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The microphone is in use by another program or could not be started.';
    default:
      return 'The microphone could not be started.';
  }
}
