"use strict";
// The content origin's frame page: hosts one archive page and tells the reader (the app origin, exactly)
// which article is showing. It obeys only navigation requests posted by that same reader window.
(function () {
  var appOrigin = document.documentElement.getAttribute("data-app-origin");
  var frame = document.getElementById("article");
  function allowed(url) {
    return typeof url === "string" && url.indexOf("//") < 0 && url.indexOf("\\") < 0 &&
      (url.indexOf("/content/") === 0 || url.indexOf("/random?") === 0);
  }
  var next = new URLSearchParams(window.location.search).get("next");
  frame.src = allowed(next) ? next : "/_blank";
  frame.addEventListener("load", function () {
    var where, title;
    try {
      where = frame.contentWindow.location;
      title = frame.contentDocument.title;
    } catch (e) { return; }                                  // left for another origin: nothing to report
    if (where.origin !== window.location.origin || window.parent === window) return;
    window.parent.postMessage({type: "appliance:page", path: where.pathname, title: title || ""}, appOrigin);
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== appOrigin || event.source !== window.parent) return;
    var data = event.data || {};
    if (data.type === "appliance:navigate" && allowed(data.url)) frame.src = data.url;
  });
})();
