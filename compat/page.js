// The browser participant: joins with a token, publishes its (fake) microphone, listens to the
// Python participant's tone, sets its metadata and waits for a data packet. Every step is reported
// through window.report (exposed by driver.mjs), which prints one JSON line per event.
/* global LivekitClient */
"use strict";

const { Room, RoomEvent, Track } = LivekitClient;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, withinMs, what) {
  const end = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// inbound-rtp audio counters of one remote track's receiver. (audioLevel and totalAudioEnergy
// stay 0 in headless Chromium, which has no audio output to play out to: WebAudio measures it.)
async function inbound(track) {
  const stats = await track.receiver.getStats();
  for (const s of stats.values()) {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      return { samples: s.totalSamplesReceived || 0, packets: s.packetsReceived || 0 };
    }
  }
  return { samples: 0, packets: 0 };
}

// The RMS level and the frequency of the loudest bin heard through WebAudio (Chromium plays a remote WebRTC
// stream into WebAudio only while a media element also plays it: track.attach() does).
async function listen(mediaStreamTrack, listenMs) {
  const ctx = new AudioContext();
  await ctx.resume();
  const source = ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const sum = new Float32Array(analyser.frequencyBinCount);
  const wave = new Float32Array(analyser.fftSize);
  let rms = 0;
  const end = Date.now() + listenMs;
  while (Date.now() < end) {
    await sleep(100);
    analyser.getFloatFrequencyData(bins);
    for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
    analyser.getFloatTimeDomainData(wave);
    rms = Math.max(rms, Math.sqrt(wave.reduce((acc, x) => acc + x * x, 0) / wave.length));
  }
  let best = 1;
  for (let i = 2; i < sum.length; i++) if (sum[i] > sum[best]) best = i;
  const hz = (best * ctx.sampleRate) / analyser.fftSize;
  await ctx.close();
  return { hz, binHz: ctx.sampleRate / analyser.fftSize, rms };
}

window.runCompat = async function runCompat({ url, token, peer, metadata, listenMs }) {
  const room = new Room();
  let peerTrack = null;
  room.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
    if (participant.identity === peer && track.kind === Track.Kind.Audio) peerTrack = track;
  });
  room.on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
    window.report({
      event: "data",
      text: new TextDecoder().decode(payload),
      from: participant ? participant.identity : null,
      topic: topic || null,
    });
  });
  room.on(RoomEvent.Disconnected, (reason) => window.report({ event: "disconnected", reason }));
  window.compatRoom = room;

  await room.connect(url, token);
  window.report({ event: "joined", identity: room.localParticipant.identity });

  await room.localParticipant.setMicrophoneEnabled(true);
  window.report({ event: "published" });

  await until(() => peerTrack !== null, 15000, `a track from ${peer}`);
  const element = peerTrack.attach();
  element.muted = true;
  document.body.appendChild(element);
  window.report({ event: "subscribed", sid: peerTrack.sid });

  const before = await inbound(peerTrack);
  const { hz, binHz, rms } = await listen(peerTrack.mediaStreamTrack, listenMs);
  const after = await inbound(peerTrack);
  window.report({
    event: "heard",
    samples: after.samples - before.samples,
    packets: after.packets - before.packets,
    rms,
    peakHz: hz,
    binHz,
  });

  try {
    await room.localParticipant.setMetadata(metadata);
    window.report({ event: "metadata", ok: true, metadata: room.localParticipant.metadata });
  } catch (err) {
    window.report({ event: "metadata", ok: false, error: String(err) });
  }
  window.report({ event: "ready-for-data" });
};
