"use strict";
// The "add a learning system" form: show only the credential fields of the chosen kind (without JavaScript
// every set shows and the server reads only the chosen kind's fields).
(function () {
  var kind = document.getElementById("provider-kind");
  if (!kind) return;
  function show() {
    document.querySelectorAll("fieldset.credentials").forEach(function (set) {
      var mine = set.getAttribute("data-kind") === kind.value;
      set.hidden = !mine;
      set.disabled = !mine;
    });
  }
  kind.addEventListener("change", show);
  show();
})();
