"use strict";
// Shared by the media pages: JSON calls with the session's CSRF token (from /api/v1/auth/me), and the page's
// translated sentences (the JSON block #ui-strings the server renders; no script carries its own English).
var media = (function () {
  var csrf = null;
  function token() {
    if (csrf !== null) { return Promise.resolve(csrf); }
    return fetch("/api/v1/auth/me", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {data: {}}; })
      .then(function (body) { csrf = (body.data && body.data.csrf_token) || ""; return csrf; })
      .catch(function () { csrf = ""; return csrf; });
  }
  function call(method, url, body, extra) {
    return token().then(function (t) {
      var opts = Object.assign({method: method, credentials: "same-origin", headers: {"X-CSRF-Token": t}}, extra || {});
      if (body instanceof FormData) { opts.body = body; }
      else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
      return fetch(url, opts).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) { j.status = r.status; return j; });
      }, function () {  // no answer at all (server restarting, Wi-Fi gone): an error the page can show
        return {status: 0, error: {code: "network", message: t("no_answer")}};
      });
    });
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
  function errorText(error) {  // the API's error as the sentence pages use for its code, else its own message
    if (!error) { return ""; }
    var said = t("error:" + error.code);
    return said !== "error:" + error.code ? said : error.message;
  }
  return {call: call, t: t, errorText: errorText};
})();
