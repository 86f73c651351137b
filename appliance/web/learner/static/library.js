"use strict";
(function () {
  var status = document.getElementById("status");
  var list = document.getElementById("books");
  Lib.api("/api/v1/libraries?per_page=100").then(function (r) {
    if (r.status === 401) { window.location = "/?next=" + encodeURIComponent("/library"); return null; }
    return r.json();
  }).then(function (body) {
    if (!body) return;
    var books = body.data || [];
    books.sort(function (a, b) { return (b.featured - a.featured) || a.title.localeCompare(b.title); });
    Lib.text(status, books.length ? "" : "No books are available yet.");
    books.forEach(function (b) {
      var li = Lib.make("li", b.featured ? {"class": "featured"} : {});
      if (b.has_illustration) li.appendChild(Lib.make("img", {src: "/catalog/v2/illustration/" + b.uuid + "?size=48", alt: ""}));
      var a = Lib.make("a", {href: "/library/read/" + encodeURIComponent(b.slug) + "/"}, b.title);
      li.appendChild(a);
      li.appendChild(Lib.make("p", {}, b.description));
      list.appendChild(li);
    });
  }).catch(function () { Lib.text(status, "The library could not be loaded. Please try again."); });
})();
