"use strict";
// Progressive enhancement: a picked CSV file fills the roster box (the form itself works without this).
(function () {
  var file = document.getElementById("csv-file"), box = document.getElementById("csv");
  if (!file || !box || !window.FileReader) { return; }
  file.addEventListener("change", function () {
    if (!file.files.length) { return; }
    var reader = new FileReader();
    reader.onload = function () { box.value = String(reader.result).replace(/^\uFEFF/, ""); };
    reader.readAsText(file.files[0]);
  });
})();
