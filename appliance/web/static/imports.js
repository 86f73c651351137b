"use strict";
// Progressive enhancement: while an import runs, refresh its progress bar every two seconds.
(function () {
  var table = document.getElementById("import-table");
  if (!table) { return; }
  function size(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i === 0 || n >= 100 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }
  function tick() {
    fetch("/api/v1/libraries/imports?per_page=10", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {data: []}; })
      .then(function (body) {
        var running = false;
        (body.data || []).forEach(function (imp) {
          var row = table.querySelector('tr[data-import="' + imp.id + '"]');
          if (!row) { return; }
          row.querySelector(".state").textContent = imp.state;
          var cell = row.lastElementChild, bar = cell.querySelector("progress");
          if (imp.bytes_total) {
            if (!bar) { bar = document.createElement("progress"); cell.prepend(bar); }
            bar.max = imp.bytes_total; bar.value = imp.bytes_done;
          }
          cell.querySelector(".bytes").textContent = size(imp.bytes_done) + (imp.bytes_total ? " / " + size(imp.bytes_total) : "");
          if (["queued", "downloading", "verifying"].indexOf(imp.state) >= 0) { running = true; }
        });
        if (running) { setTimeout(tick, 2000); }
      }, function () { setTimeout(tick, 5000); });
  }
  tick();
})();
