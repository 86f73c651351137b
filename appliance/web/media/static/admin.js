"use strict";
// The admin video page: list, add URLs, upload, and live progress from the SSE feed.
(function () {
  var tbody = document.querySelector("#videos tbody");
  var message = document.getElementById("message");
  var rows = {};

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) { td.className = cls; }
    return td;
  }
  function render(v) {
    var tr = rows[v.id];
    if (!tr) {
      tr = document.createElement("tr");
      tr.id = "video-" + v.id;
      rows[v.id] = tr;
      tbody.insertBefore(tr, tbody.firstChild);
    }
    tr.replaceChildren(cell(v.id), cell(v.title), cell(v.availability, "state"), progressCell(v.progress),
                       cell(v.attempts), cell(v.last_error, "error"), actions(v));
  }
  function progressCell(p) {
    var td = document.createElement("td");
    td.className = "progress";
    if (p && p.percent !== null && p.percent !== undefined) {
      var bar = document.createElement("progress");
      bar.max = 100; bar.value = p.percent;
      td.appendChild(bar);
      var speed = p.speed_bps ? " " + (p.speed_bps / 1048576).toFixed(1) + " MiB/s" : "";
      var eta = p.eta_s !== null && p.eta_s !== undefined ? " ETA " + p.eta_s + " s" : "";
      td.appendChild(document.createTextNode(" " + p.percent.toFixed(1) + "%" + speed + eta));
    }
    return td;
  }
  function actions(v) {
    var td = document.createElement("td");
    if (v.availability === "error" && v.source_kind === "download") {
      var b = document.createElement("button");
      b.textContent = "Retry";
      b.addEventListener("click", function () { media.call("POST", "/api/v1/videos/" + v.id + "/retry").then(load); });
      td.appendChild(b);
    }
    if (v.availability === "available") {
      var a = document.createElement("a");
      a.href = "/videos/" + v.id; a.textContent = "Play";
      td.appendChild(a);
    }
    return td;
  }
  function load() {
    return media.call("GET", "/api/v1/videos?per_page=100").then(function (r) {
      (r.data || []).slice().reverse().forEach(render);
    });
  }
  function merge(id, changes) {
    media.call("GET", "/api/v1/videos/" + id).then(function (r) { if (r.data) { render(Object.assign(r.data, changes)); } });
  }
  document.getElementById("add-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var urls = document.getElementById("urls").value.split("\n").map(function (s) { return s.trim(); })
      .filter(Boolean);
    media.call("POST", "/api/v1/videos", {urls: urls}).then(function (r) {
      message.textContent = r.error ? r.error.message : "Queued " + r.data.length + " video(s).";
      load();
    });
  });
  document.getElementById("upload-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var form = new FormData();
    form.append("file", document.getElementById("file").files[0]);
    message.textContent = "Uploading…";
    media.call("POST", "/api/v1/videos/upload", form).then(function (r) {
      message.textContent = r.error ? r.error.message : "Uploaded: " + r.data.title;
      load();
    });
  });
  var source = new EventSource("/api/v1/videos/events");
  source.addEventListener("progress", function (e) {
    var ev = JSON.parse(e.data), tr = rows[ev.video_id];
    if (tr) { tr.replaceChild(progressCell(ev), tr.querySelector("td.progress")); }
  });
  source.addEventListener("state", function (e) { merge(JSON.parse(e.data).video_id, {}); });
  source.addEventListener("deleted", function (e) {
    var id = JSON.parse(e.data).video_id;
    if (rows[id]) { rows[id].remove(); delete rows[id]; }
  });
  load();
})();
