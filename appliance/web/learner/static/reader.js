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
      // each segment escaped whole: a path holding "?" or "#" must stay the path (encodeURI kept them raw)
      history.replaceState(null, "", "/library/read/" + encodeURIComponent(book) + "/" +
                                     p.split("/").map(encodeURIComponent).join("/"));
      if (typeof data.title === "string" && data.title) document.title = data.title.slice(0, 200);
    }
  });
  setInterval(function () {
    if (document.visibilityState === "visible" && current) seconds += 1;
    if (seconds >= FLUSH_EVERY) flush();
  }, 1000);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });
  window.addEventListener("pagehide", flush);

  // Title suggestions: a listbox under the search box (combobox pattern). Choosing one OPENS that article in
  // the frame; the last entry searches the book's text instead. Built from DOM nodes, never HTML from data.
  var form = document.getElementById("search");
  var input = form.querySelector("input[name=q]");
  var list = document.getElementById("suggestions");
  var timer = null, inflight = null, options = [], active = -1;
  function close() {
    list.hidden = true; list.textContent = ""; options = []; active = -1;
    input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant");
  }
  function highlight(li, title, q) {
    var at = title.toLowerCase().indexOf(q.toLowerCase());
    if (at < 0 || !q) { li.appendChild(document.createTextNode(title)); return; }
    li.appendChild(document.createTextNode(title.slice(0, at)));
    li.appendChild(Lib.make("mark", {}, title.slice(at, at + q.length)));
    li.appendChild(document.createTextNode(title.slice(at + q.length)));
  }
  function choose(i) {
    var o = options[i];
    if (!o) return;
    close();
    if (o.search) { form.submit(); return; }
    input.value = o.title;
    navigate(contentPrefix + o.path.split("/").map(encodeURIComponent).join("/"));
    frame.focus();
  }
  function mark(i) {
    if (active >= 0 && options[active]) options[active].el.setAttribute("aria-selected", "false");
    active = i;
    if (i < 0) { input.removeAttribute("aria-activedescendant"); return; }
    options[i].el.setAttribute("aria-selected", "true");
    input.setAttribute("aria-activedescendant", options[i].el.id);
    options[i].el.scrollIntoView({block: "nearest"});
  }
  function show(q, found) {
    close();
    var seen = {};
    found.forEach(function (s) {                               // one entry per article and per visible title
      if (typeof s.path !== "string" || typeof s.title !== "string") return;
      var key = s.title.trim().toLowerCase();
      if (seen["p:" + s.path] || seen["t:" + key]) return;
      seen["p:" + s.path] = seen["t:" + key] = true;
      options.push({path: s.path, title: s.title || s.path});
    });
    options.push({search: true, title: Lib.t("search_for", {query: q})});
    options.forEach(function (o, i) {
      var li = Lib.make("li", {id: "suggestion-" + i, role: "option", "aria-selected": "false"});
      if (o.search) { li.className = "search-entry"; li.textContent = o.title; } else { highlight(li, o.title, q); }
      li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
      o.el = li;
      list.appendChild(li);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {                         // debounced: one request per pause, not per key
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      if (inflight) inflight.abort();
      inflight = new AbortController();
      Lib.api("/api/v1/suggest?book=" + encodeURIComponent(book) + "&q=" + encodeURIComponent(q),
              {signal: inflight.signal})
        .then(function (r) { return r.ok ? r.json() : {data: []}; })
        .then(function (body) { if (input.value.trim() === q) show(q, body.data || []); })
        .catch(function () { return null; });
    }, 250);
  });
  input.addEventListener("keydown", function (e) {
    if (list.hidden || !options.length) return;
    if (e.key === "ArrowDown") { e.preventDefault(); mark((active + 1) % options.length); }
    else if (e.key === "ArrowUp") { e.preventDefault(); mark(active <= 0 ? options.length - 1 : active - 1); }
    else if (e.key === "Enter" && active >= 0) { e.preventDefault(); choose(active); }
    else if (e.key === "Escape") { e.preventDefault(); close(); }
  });
  input.addEventListener("blur", function () { setTimeout(close, 150); });
  window.readerState = function () { return {book: book, current: current, seconds: seconds, origin: contentOrigin}; };
  Lib.loadCsrf();
})();
