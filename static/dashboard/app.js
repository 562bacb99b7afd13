/* Tingxie dashboard behaviour: time zone, copy buttons, drag-and-drop upload, click-to-play segments. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Send htmx requests with the CSRF token.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Tell the server the browser's time zone once per session; the following pages show times in it.
  (function syncTimezone() {
    var body = document.body;
    // Also on the sign-in pages: the session (and its tz) survives signing in.
    if (!body || !body.dataset.tzUrl) return;
    var tz;
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (err) { return; }
    if (!tz || tz === body.dataset.tz) return;
    var data = new FormData();
    data.append("tz", tz);
    fetch(body.dataset.tzUrl, { method: "POST", body: data, headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin" })
      .then(function (r) { if (r.ok && body.dataset.tz === "") { body.dataset.tz = tz; } });
  })();

  // Copy buttons: <button data-copy="#id">
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-copy]");
    if (!btn) return;
    var el = document.querySelector(btn.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent.trim();
    var done = function () {
      var old = btn.textContent;
      btn.textContent = btn.dataset.copied || "Copied";
      setTimeout(function () { btn.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(el); });
    } else {
      selectText(el);
      try { document.execCommand("copy"); done(); } catch (err) { /* the text stays selected */ }
    }
  });
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Confirm destructive actions: <form data-confirm="...">
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // Drag-and-drop upload zone.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = zone.querySelector("input[type=file]");
    var list = zone.querySelector(".filelist");
    function show() {
      if (!list) return;
      list.innerHTML = "";
      Array.prototype.forEach.call(input.files, function (f) {
        var li = document.createElement("li");
        li.textContent = f.name + " — " + (f.size / 1048576).toFixed(1) + " MB";
        list.appendChild(li);
      });
    }
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("dragover"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.remove("dragover"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        show();
      }
    });
  });

  // Click a segment's time to play that part of the audio.
  var player = document.getElementById("player");
  if (player) {
    var stopAt = null;
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("button[data-start]");
      if (!btn) return;
      var start = parseFloat(btn.dataset.start), end = parseFloat(btn.dataset.end);
      document.querySelectorAll(".segments li.playing").forEach(function (li) { li.classList.remove("playing"); });
      btn.closest("li").classList.add("playing");
      stopAt = isFinite(end) ? end : null;
      player.currentTime = start;
      player.play();
    });
    player.addEventListener("timeupdate", function () {
      if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
    });
  }

  // Speakers page: record a voice sample with the microphone and add it to the upload field.
  var recorderBox = document.querySelector("[data-recorder]");
  if (recorderBox && window.MediaRecorder && navigator.mediaDevices && window.DataTransfer) {
    recorderBox.hidden = false;
    var recordBtn = recorderBox.querySelector("[data-record]");
    var note = recorderBox.querySelector("[data-recorded]");
    var fileInput = document.querySelector("#enroll-form input[type=file]");
    var startLabel = recordBtn.textContent, recorder = null, chunks = [];
    recordBtn.addEventListener("click", function () {
      if (recorder) { recorder.stop(); return; }
      navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
        chunks = [];
        recorder = new MediaRecorder(stream);
        recorder.ondataavailable = function (e) { if (e.data.size) chunks.push(e.data); };
        recorder.onstop = function () {
          stream.getTracks().forEach(function (t) { t.stop(); });
          var type = recorder.mimeType || "audio/webm";
          var ext = type.indexOf("ogg") >= 0 ? "ogg" : (type.indexOf("mp4") >= 0 ? "m4a" : "webm");
          var transfer = new DataTransfer();
          Array.prototype.forEach.call(fileInput.files, function (f) { transfer.items.add(f); });
          transfer.items.add(new File(chunks, "recording-" + (transfer.items.length + 1) + "." + ext, { type: type }));
          fileInput.files = transfer.files;
          note.textContent = fileInput.files.length + " \u2713";
          recorder = null;
          recordBtn.textContent = startLabel;
        };
        recorder.start();
        recordBtn.textContent = recordBtn.dataset.stopLabel;
      }).catch(function (err) { note.textContent = String(err); });
    });
  }
})();
