"use strict";
// Resume where the learner left off, and report position and time watched while playing.
(function () {
  var video = document.getElementById("player");
  if (!video) { return; }
  var id = video.dataset.videoId;
  var api = "/api/v1/videos/" + id + "/position";
  var watched = 0, lastTick = null, lastSent = 0;

  function tick() {
    var now = performance.now();
    if (lastTick !== null && !video.paused) { watched += Math.min((now - lastTick) / 1000, 5); }
    lastTick = now;
  }
  function report(keepalive) {
    tick();
    var body = {position_s: video.currentTime || 0, watched_s: Math.min(watched, 600), completed: video.ended};
    watched = 0;
    lastSent = performance.now();
    return media.call("PUT", api, body, keepalive ? {keepalive: true} : undefined);
  }
  // The server already starts the video where the learner left off (a #t= media fragment, translated note):
  // only a page without one asks the API.
  var started = (video.getAttribute("src") || "").indexOf("#t=") >= 0;
  (started ? Promise.resolve({}) : media.call("GET", api)).then(function (r) {
    var pos = r.data ? r.data.position_s : 0;
    if (pos > 1 && !(r.data && r.data.completed)) {
      var seek = function () {
        video.currentTime = pos;
        var note = document.getElementById("resume-note");
        note.textContent = media.t("resuming_at",
          {time: Math.floor(pos / 60) + ":" + String(Math.floor(pos % 60)).padStart(2, "0")});
        note.hidden = false;
      };
      if (video.readyState >= 1) { seek(); } else { video.addEventListener("loadedmetadata", seek, {once: true}); }
    }
  });
  video.addEventListener("play", function () { lastTick = performance.now(); });
  video.addEventListener("timeupdate", function () {
    tick();
    if (performance.now() - lastSent > 10000) { report(false); }
  });
  ["pause", "ended", "seeked"].forEach(function (ev) { video.addEventListener(ev, function () { report(false); }); });
  window.addEventListener("pagehide", function () { report(true); });
  window.mediaPlayer = {report: report};
})();
