// /app/live/: microphone -> AudioWorklet (16 kHz PCM16) -> the stream worker, FunASR protocol, 2pass mode.
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const startBtn = document.getElementById("live-start");
  const stopBtn = document.getElementById("live-stop");
  const status = document.getElementById("live-status");
  const finals = document.getElementById("live-finals");
  const partial = document.getElementById("live-partial");
  let ws = null;
  let ctx = null;
  let stream = null;

  function setStatus(text) { status.textContent = text; }

  async function start() {
    startBtn.disabled = true;
    partial.textContent = "";
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    } catch (err) {
      setStatus("Microphone unavailable: " + err.message);
      startBtn.disabled = false;
      return;
    }
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule(root.dataset.worklet);
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "pcm16-downsampler");
    const url = root.dataset.url.replace(/\/$/, "") + "/?ticket=" + encodeURIComponent(root.dataset.ticket);
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = function () {
      ws.send(JSON.stringify({ mode: "2pass", chunk_size: [5, 10, 5], chunk_interval: 10, wav_name: "browser",
        wav_format: "pcm", audio_fs: 16000, is_speaking: true, itn: true }));
      node.port.onmessage = function (event) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(event.data); };
      source.connect(node);
      setStatus("Listening…");
      stopBtn.disabled = false;
    };
    ws.onmessage = function (event) {
      const msg = JSON.parse(event.data);
      if (msg.error) { setStatus(msg.error); return; }
      if (msg.mode === "2pass-online" || msg.mode === "online") {
        partial.textContent += msg.text;
      } else if (msg.mode === "2pass-offline" || msg.mode === "offline") {
        partial.textContent = "";
        if (msg.text) {
          const li = document.createElement("li");
          li.textContent = msg.text;
          finals.appendChild(li);
        }
      }
      if (msg.is_end) stop(false);
    };
    ws.onclose = function (event) {
      if (event.code !== 1000 && event.code !== 1005 && event.reason) setStatus(event.reason);
      cleanup();
    };
  }

  function cleanup() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    if (ctx) ctx.close();
    stream = null;
    ctx = null;
    startBtn.disabled = false;
    stopBtn.disabled = true;
  }

  function stop(sendEnd) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      if (sendEnd) {
        ws.send(JSON.stringify({ is_speaking: false, is_end: true }));
        setStatus("Finishing…");
        return; // the server answers the last final, then is_end
      }
      ws.close(1000);
      setStatus("Stopped");
    }
    cleanup();
  }

  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", function () { stop(true); });
})();
