"use strict";
// Progressive enhancement: a picked icon is sent to the API with the session's CSRF token, then the page reloads.
(function () {
  function said(key) {  // a sentence from the page's translated block #ui-strings
    try { return JSON.parse(document.getElementById("ui-strings").textContent)[key] || key; } catch (e) { return key; }
  }
  Array.prototype.forEach.call(document.querySelectorAll("input[data-icon-for]"), function (input) {
    input.addEventListener("change", function () {
      if (!input.files.length) { return; }
      fetch("/api/v1/links/" + input.dataset.iconFor + "/icon", {
        method: "PUT", credentials: "same-origin", body: input.files[0],
        headers: {"X-CSRF-Token": input.dataset.csrf, "Content-Type": "application/octet-stream"}
      }).then(function (r) {
        if (r.ok) { window.location.reload(); return; }
        return r.json().then(function (j) { window.alert((j.error && j.error.message) || said("icon_refused")); });
      });
    });
  });
})();
