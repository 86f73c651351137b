"use strict";
(function () {
  var params = new URLSearchParams(window.location.search);
  var q = params.get("q") || "", books = params.get("books") || "", page = parseInt(params.get("page") || "1", 10);
  document.getElementById("q").value = q;
  document.getElementById("books").value = books;
  var status = document.getElementById("status"), results = document.getElementById("results");
  if (!q) { Lib.text(status, "Type something to search for."); return; }
  Lib.text(status, "Searching…");
  var url = "/api/v1/search?per_page=10&page=" + page + "&q=" + encodeURIComponent(q) +
            (books ? "&books=" + encodeURIComponent(books) : "");
  Lib.api(url).then(function (r) { return r.json().then(function (b) { return {status: r.status, body: b}; }); })
    .then(function (res) {
      if (res.status === 503) { Lib.text(status, "Search is busy right now. Please try again in a moment."); return; }
      if (res.status !== 200) { Lib.text(status, res.body.error ? res.body.error.message : "Search failed."); return; }
      var meta = res.body.meta;
      var note = meta.title_only_books.length ? " (titles only in: " + meta.title_only_books.join(", ") + ")" : "";
      Lib.text(status, "About " + meta.total + " results" + note + ".");
      res.body.data.forEach(function (hit) {
        var li = Lib.make("li");
        li.appendChild(Lib.make("a", {href: "/library/read/" + encodeURIComponent(hit.book) + "/" + encodeURI(hit.path)}, hit.title));
        li.appendChild(Lib.make("div", {"class": "book"}, hit.book));
        if (hit.snippet) li.appendChild(Lib.make("p", {}, hit.snippet));
        results.appendChild(li);
      });
      function link(id, p) {
        var a = document.getElementById(id);
        params.set("page", p); a.href = "?" + params.toString(); a.hidden = false;
      }
      if (page > 1) link("prev", page - 1);
      if (page * 10 < meta.total) link("next", page + 1);
    }).catch(function () { Lib.text(status, "Search failed. Please try again."); });
})();
