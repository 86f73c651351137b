"use strict";
// Reader wrapper: shows /content/{book}/{path} in a frame and reports visible reading time (the beacon).
(function () {
  var parts = window.location.pathname.split("/");       // ["", "library", "read", book, ...path]
  var book = decodeURIComponent(parts[3] || "");
  var rest = parts.slice(4).join("/");                     // still percent-encoded
  var frame = document.getElementById("page");
  var contentPrefix = "/content/" + encodeURIComponent(book) + "/";
  frame.src = contentPrefix + rest;
  document.getElementById("home").href = "/library/read/" + encodeURIComponent(book) + "/";
  document.getElementById("random").href = "/random?content=" + encodeURIComponent(book);
  document.querySelector("#search input[name=books]").value = book;

  var current = null, seconds = 0, FLUSH_EVERY = 15;
  function send(path, secs) {
    if (!path || secs < 1) return;
    Lib.api("/api/v1/reading", {method: "POST", keepalive: true, headers: {"Content-Type": "application/json"},
      body: JSON.stringify({book: book, path: path, seconds: Math.min(secs, 600)})});
  }
  function flush() { send(current, seconds); seconds = 0; }
  function framePath() {
    try {
      var p = frame.contentWindow.location.pathname;
      if (p.indexOf(contentPrefix) !== 0) return null;
      return decodeURIComponent(p.slice(contentPrefix.length));
    } catch (e) { return null; }
  }
  frame.addEventListener("load", function () {
    var p = framePath();
    if (p !== current) { flush(); current = p; }
    if (p !== null) {
      history.replaceState(null, "", "/library/read/" + encodeURIComponent(book) + "/" + encodeURI(p));
      try { document.title = frame.contentDocument.title || document.title; } catch (e) { /* cross-origin */ }
    }
  });
  setInterval(function () {
    if (document.visibilityState === "visible" && current) seconds += 1;
    if (seconds >= FLUSH_EVERY) flush();
  }, 1000);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });
  window.addEventListener("pagehide", flush);

  var input = document.querySelector("#search input[name=q]");
  var list = document.getElementById("suggestions");
  var timer = null, inflight = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {                         // debounced: one request per pause, not per key
      var q = input.value.trim();
      if (q.length < 2) return;
      if (inflight) inflight.abort();
      inflight = new AbortController();
      Lib.api("/api/v1/suggest?book=" + encodeURIComponent(book) + "&q=" + encodeURIComponent(q),
              {signal: inflight.signal})
        .then(function (r) { return r.ok ? r.json() : {data: []}; })
        .then(function (body) {
          list.textContent = "";
          body.data.forEach(function (s) { list.appendChild(Lib.make("option", {value: s.title})); });
        }).catch(function () { return null; });
    }, 250);
  });
  window.readerState = function () { return {book: book, current: current, seconds: seconds}; };
  Lib.loadCsrf();
})();
