"use strict";
// The admin video page: list, add URLs, upload, visibility, retry, and live state and progress from the SSE feed.
(function () {
  var t = media.t;
  var tbody = document.querySelector("#videos tbody");
  var message = document.getElementById("message");
  var live = document.getElementById("live");
  var CELLS = ["id", "title", "state", "progress", "attempts", "visibility", "error", "actions"];
  var videos = {};      // id -> the newest known video (API shape)
  var rows = {};        // id -> its <tr>
  var stamp = {};       // id -> tick of its newest state event: an answer asked for before it is stale
  var moved = {};       // id -> tick of its newest progress event
  var tick = 0;
  var facilities = [];  // the facilities this admin can show videos in
  var facilitiesLoaded = media.call("GET", "/api/v1/facilities").then(function (r) {
    facilities = r.data || [];
    Object.keys(videos).forEach(function (id) { render(videos[id]); });
  });

  function text(td, value) { td.textContent = value === null || value === undefined ? "" : String(value); }
  function bytes(n) {
    if (n >= 1048576) { return (n / 1048576).toFixed(1) + " MiB"; }
    return n >= 1024 ? (n / 1024).toFixed(0) + " KiB" : n + " B";
  }
  function duration(s) {
    s = Math.round(s);
    return s >= 60 ? t("min_s", {min: Math.floor(s / 60), s: s % 60}) : t("s", {s: s});
  }

  function row(id) {
    var tr = rows[id];
    if (tr) { return tr; }
    tr = document.createElement("tr");
    tr.id = "video-" + id;
    CELLS.forEach(function (name) {
      var td = document.createElement("td");
      td.className = name;
      tr.appendChild(td);
    });
    rows[id] = tr;
    var next = Array.prototype.find.call(tbody.children, function (other) {  // newest first, as the API lists
      return Number(other.id.slice(6)) < id;
    });
    tbody.insertBefore(tr, next || null);
    return tr;
  }
  function renameForm(v) {
    var cell = rows[v.id].children[1], form = document.createElement("form");
    var label = document.createElement("label"), input = document.createElement("input");
    label.textContent = t("new_title"); label.htmlFor = "rename-" + v.id;
    input.id = "rename-" + v.id; input.value = v.title || ""; input.maxLength = 300; input.required = true;
    form.className = "inline";
    form.append(label, input, button(t("save"), function () { form.requestSubmit(); }));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      media.call("PATCH", "/api/v1/videos/" + v.id, {title: input.value}).then(function (r) {
        if (r.error) { say(media.errorText(r.error), "error"); return; }
        say(t("saved"), "ok");
        render(Object.assign(v, {title: r.data.title}));
      });
    });
    cell.replaceChildren(form);
    input.focus();
  }
  function drop(id) {
    if (rows[id]) { rows[id].remove(); }
    delete rows[id]; delete videos[id];
  }

  function render(v) {
    videos[v.id] = v;
    var tr = row(v.id), c = tr.children;
    tr.dataset.state = v.availability;
    text(c[0], v.id);
    var name = document.createElement("span");
    name.textContent = v.title || (v.source_kind === "upload" ? t("uploaded_video") : t("title_unknown"));
    c[1].replaceChildren(name);
    if (v.source_url) {
      var url = document.createElement("small");
      url.textContent = v.source_url;
      c[1].appendChild(url);
    }
    renderLive(v);
    text(c[4], v.attempts);
    renderVisibility(c[5], v);
    var error = v.last_error || "";
    if (error && v.next_attempt_at && v.availability === "pending") {
      error += " " + t("next_attempt", {time: new Date(v.next_attempt_at).toLocaleTimeString()});
    }
    text(c[6], error);
    renderActions(c[7], v);
  }
  function renderLive(v) {
    var c = rows[v.id].children;
    text(c[2], t("state_" + v.availability));
    var td = c[3], p = v.availability === "processing" ? v.progress : null;
    if (!p) { td.replaceChildren(); return; }
    var parts = [];
    if (p.percent !== null && p.percent !== undefined) { parts.push(p.percent.toFixed(1) + "%"); }
    else if (p.downloaded_bytes) { parts.push(bytes(p.downloaded_bytes)); }
    if (p.speed_bps) { parts.push(bytes(p.speed_bps) + "/s"); }
    if (p.eta_s !== null && p.eta_s !== undefined) { parts.push(t("eta", {time: duration(p.eta_s)})); }
    var label = document.createElement("span");
    label.textContent = parts.join(", ");
    if (p.percent !== null && p.percent !== undefined) {
      var bar = document.createElement("progress");
      bar.max = 100; bar.value = p.percent;
      td.replaceChildren(bar, " ", label);
    } else {
      td.replaceChildren(label);
    }
  }
  function renderVisibility(td, v) {
    if (!v.facility_ids) { return; }  // not known yet (a state event); the video's own GET brings it
    var key = v.facility_ids.join(",") + "|" + facilities.map(function (f) { return f.id; }).join(",");
    if (td.dataset.key === key) { return; }  // untouched, so a click in progress is never lost
    td.dataset.key = key;
    td.replaceChildren();
    facilities.forEach(function (f) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox"; box.value = String(f.id);
      box.checked = v.facility_ids.indexOf(f.id) >= 0;
      box.addEventListener("change", function () { setVisibility(v.id, td); });
      label.append(box, " " + f.name);
      td.appendChild(label);
    });
    var mine = facilities.map(function (f) { return f.id; });
    var others = v.facility_ids.filter(function (id) { return mine.indexOf(id) < 0; }).length;
    var note = document.createElement("span");
    note.className = "note";
    note.textContent = v.facility_ids.length === 0 ? t("hidden_from_learners")
      : others ? t(others === 1 ? "other_facility" : "other_facilities", {num: others}) : "";
    if (note.textContent) { td.appendChild(note); }
  }
  function setVisibility(id, td) {
    var boxes = Array.prototype.slice.call(td.querySelectorAll("input[type=checkbox]"));
    var ids = boxes.filter(function (b) { return b.checked; }).map(function (b) { return Number(b.value); });
    boxes.forEach(function (b) { b.disabled = true; });
    media.call("PUT", "/api/v1/videos/" + id + "/visibility", {facility_ids: ids}).then(function (r) {
      say(media.errorText(r.error), "error");
      var v = videos[id];
      if (!v) { return; }
      if (r.data) { v.facility_ids = r.data.facility_ids; }
      td.dataset.key = "";  // rebuilt from what the server now says, enabled again
      render(v);
    });
  }
  function say(text, kind) {  // a saved confirmation or an error, styled as such
    message.textContent = text;
    message.className = text ? "flash " + (kind || "ok") : "";
  }
  function button(label, onClick, cls) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = label;
    if (cls) { b.className = cls; }
    b.addEventListener("click", function () { onClick(b); });
    return b;
  }
  function renderActions(td, v) {
    td.replaceChildren();
    if (v.availability === "error" && v.source_kind === "download") {
      td.appendChild(button(t("retry"), function (b) {
        b.disabled = true;
        media.call("POST", "/api/v1/videos/" + v.id + "/retry").then(function (r) {
          if (r.error) { say(media.errorText(r.error), "error"); }
          fetchVideo(v.id);
        });
      }));
    }
    td.appendChild(button(t("rename"), function () { renameForm(v); }, "secondary"));
    td.appendChild(button(t("delete"), function (b) {
      if (!window.confirm(t("confirm_delete", {title: v.title || t("this_video")}))) { return; }
      b.disabled = true;
      media.call("DELETE", "/api/v1/videos/" + v.id).then(function (r) {
        if (r.error) { b.disabled = false; say(media.errorText(r.error), "error"); return; }
        drop(v.id);
        say(t("deleted"), "ok");
      });
    }, "danger"));
    if (v.availability === "available") {
      var a = document.createElement("a");
      a.href = "/videos/" + v.id; a.textContent = t("play");
      td.appendChild(a);
    }
  }

  // An answer asked for before the newest event must not undo it (nor move a progress bar back).
  function apply(v, asked) {
    if ((stamp[v.id] || 0) > asked) { return; }
    var old = videos[v.id];
    if (old && (moved[v.id] || 0) > asked) { v.availability = old.availability; v.progress = old.progress; }
    render(v);
  }
  function fetchVideo(id) {
    var asked = tick;
    return media.call("GET", "/api/v1/videos/" + id).then(function (r) {
      if (r.status === 404 && (stamp[id] || 0) <= asked) { drop(id); }
      else if (r.data) { apply(r.data, asked); }
    });
  }
  function load() {
    var asked = tick;
    return Promise.all([facilitiesLoaded, media.call("GET", "/api/v1/videos?per_page=100")]).then(function (res) {
      var r = res[1];
      if (!r.data) { say(r.error ? media.errorText(r.error) : t("videos_not_loaded"), "error"); return; }
      var listed = {};
      r.data.forEach(function (v) { listed[v.id] = true; apply(v, asked); });
      if (r.meta && !r.meta.has_next) {  // the whole list: rows it lacks were deleted meanwhile
        Object.keys(rows).forEach(function (id) { if (!listed[id] && (stamp[id] || 0) <= asked) { drop(id); } });
      }
    });
  }

  document.getElementById("add-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var field = document.getElementById("urls");
    var urls = field.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    say("");
    media.call("POST", "/api/v1/videos", {urls: urls}).then(function (r) {
      if (r.error) {
        var why = ((r.error.details && r.error.details.urls) || []).map(function (u) { return u.url + ": " + u.reason; });
        say(media.errorText(r.error) + (why.length ? " — " + why.join("; ") : ""), "error");
        return;
      }
      var known = r.data.filter(function (v) { return !v.created; }).length;
      say(t("queued_videos", {num: r.data.length - known}) + (known ? " " + t("already_known", {num: known}) : ""), "ok");
      field.value = "";
      load();
    });
  });
  document.getElementById("upload-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var form = new FormData();
    form.append("file", document.getElementById("file").files[0]);
    say(t("uploading"), "ok");
    media.call("POST", "/api/v1/videos/upload", form).then(function (r) {
      if (r.error) { say(media.errorText(r.error), "error"); } else { say(t("uploaded", {title: r.data.title}), "ok"); }
      load();
    });
  });

  function setLive(state, words) {
    live.dataset.state = state;
    live.textContent = t("live_updates", {state: words});
  }
  var opened = false;
  function connect() {
    var source = new EventSource("/api/v1/videos/events");
    source.addEventListener("open", function () {
      setLive("live", t("live_on"));
      if (opened) { load(); }  // back after a break: catch up on what the stream missed
      opened = true;
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {  // refused (signed out, a proxy error): the browser gave up
        setLive("off", t("live_off"));
        setTimeout(connect, 10000);
      } else {
        setLive("reconnecting", t("live_reconnecting"));  // the browser retries after the server's `retry:`
      }
    });
    source.addEventListener("state", function (e) {
      var ev = JSON.parse(e.data), id = ev.video_id;
      stamp[id] = ++tick;
      var v = Object.assign({id: id}, videos[id] || {}, {availability: ev.availability, attempts: ev.attempts,
                            last_error: ev.last_error, next_attempt_at: ev.next_attempt_at});
      if (ev.title) { v.title = ev.title; }
      if (ev.availability !== "processing") { v.progress = null; }
      render(v);
      fetchVideo(id);  // the rest of the row (source, visibility, size)
    });
    source.addEventListener("progress", function (e) {
      var ev = JSON.parse(e.data), v = videos[ev.video_id];
      if (!v) { fetchVideo(ev.video_id); return; }  // added elsewhere, or before the list arrived
      if (v.availability === "available" || v.availability === "error") { return; }  // a late report
      moved[ev.video_id] = ++tick;
      v.availability = "processing";
      v.progress = {percent: ev.percent, speed_bps: ev.speed_bps, eta_s: ev.eta_s,
                    downloaded_bytes: ev.downloaded_bytes, total_bytes: ev.total_bytes};
      renderLive(v);
    });
    source.addEventListener("deleted", function (e) {
      var id = JSON.parse(e.data).video_id;
      stamp[id] = ++tick;
      drop(id);
    });
  }
  connect();
  load();
})();
