"use strict";
// Shared by the media pages: JSON calls with the session's CSRF token (from /api/v1/auth/me).
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
        return {status: 0, error: {code: "network", message: "The appliance did not answer; try again."}};
      });
    });
  }
  return {call: call};
})();
