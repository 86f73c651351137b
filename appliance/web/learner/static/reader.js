"use strict";
// Reader wrapper: frames the article from the content origin (a separate origin holding no session) and
// reports visible reading time (the beacon). The frame says which article shows with postMessage, checked
// against the exact content origin and frame; the beacon itself is sent from here, the app origin.
(function () {
  var parts = window.location.pathname.split("/");       // ["", "library", "read", book, ...path]
  var book = decodeURIComponent(parts[3] || "");
  var rest = parts.slice(4).join("/");                     // still percent-encoded
  var frame = document.getElementById("page");
  var contentPrefix = "/content/" + encodeURIComponent(book) + "/";
  var contentOrigin = null;
  var start = window.location.search.indexOf("random") >= 0 ? "/random?content=" + encodeURIComponent(book)
                                                          : contentPrefix + rest;
  document.getElementById("home").href = "/library/read/" + encodeURIComponent(book) + "/";
  document.getElementById("random").href = "/library/read/" + encodeURIComponent(book) + "/?random";
  document.querySelector("#search input[name=books]").value = book;

  function navigate(url) {
    if (contentOrigin) frame.contentWindow.postMessage({type: "appliance:navigate", url: url}, contentOrigin);
  }
  document.getElementById("home").addEventListener("click", function (e) { e.preventDefault(); navigate(contentPrefix); });
  document.getElementById("random").addEventListener("click", function (e) {
    e.preventDefault(); navigate("/random?content=" + encodeURIComponent(book));
  });
  Lib.api("/api/v1/library/pass?origin=" + encodeURIComponent(window.location.origin))
    .then(function (r) {
      if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(window.location.pathname); }
      return r.ok ? r.json() : null;
    })
    .then(function (body) {
      if (!body) return;
      contentOrigin = body.data.origin;
      frame.src = body.data.url + "&next=" + encodeURIComponent(start);
    }).catch(function () { return null; });

  var current = null, seconds = 0, FLUSH_EVERY = 15;
  function send(path, secs) {
    if (!path || secs < 1) return;
    Lib.api("/api/v1/reading", {method: "POST", keepalive: true, headers: {"Content-Type": "application/json"},
      body: JSON.stringify({book: book, path: path, seconds: Math.min(secs, 600)})});
  }
  function flush() { send(current, seconds); seconds = 0; }
  window.addEventListener("message", function (event) {
    if (!contentOrigin || event.origin !== contentOrigin || event.source !== frame.contentWindow) return;
    var data = event.data || {};
    if (data.type !== "appliance:page" || typeof data.path !== "string") return;
    var p = null;
    if (data.path.indexOf(contentPrefix) === 0) {
      try { p = decodeURIComponent(data.path.slice(contentPrefix.length)); } catch (e) { p = null; }
    }
    if (p !== current) { flush(); current = p; }
    if (p !== null) {
      history.replaceState(null, "", "/library/read/" + encodeURIComponent(book) + "/" + encodeURI(p));
      if (typeof data.title === "string" && data.title) document.title = data.title.slice(0, 200);
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
  window.readerState = function () { return {book: book, current: current, seconds: seconds, origin: contentOrigin}; };
  Lib.loadCsrf();
})();
