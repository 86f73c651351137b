"use strict";
// Shared helpers for the library pages: JSON calls with the session's CSRF token, and the page's translated
// sentences (the server renders them as the JSON block #ui-strings; no script carries its own English).
var Lib = (function () {
  var csrf = null;
  function api(url, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = Object.assign({"Accept": "application/json"}, options.headers || {});
    if (csrf && options.method && options.method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    return fetch(url, options);
  }
  function loadCsrf() {
    return fetch("/api/v1/auth/me", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body && body.data) csrf = body.data.csrf_token || null; })
      .catch(function () { return null; });
  }
  function text(el, value) { el.textContent = value; return el; }
  function make(tag, attrs, content) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (content !== undefined) el.textContent = content;
    return el;
  }
  var strings = null;
  function t(key, values) {
    if (strings === null) {
      var block = document.getElementById("ui-strings");
      try { strings = block ? JSON.parse(block.textContent) : {}; } catch (e) { strings = {}; }
    }
    var out = typeof strings[key] === "string" ? strings[key] : key;
    Object.keys(values || {}).forEach(function (k) { out = out.split("{" + k + "}").join(String(values[k])); });
    return out;
  }
  return {api: api, loadCsrf: loadCsrf, text: text, make: make, t: t};
})();
