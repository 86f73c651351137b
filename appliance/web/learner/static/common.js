"use strict";
// Shared helpers for the library pages: JSON calls with the session's CSRF token.
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
  return {api: api, loadCsrf: loadCsrf, text: text, make: make};
})();
